// Package jwks keeps a remote JSON Web Key Set (RFC 7517) in memory for the
// token verifiers: oidcclient for the identity provider's keys and
// tokenmint's Verifier for Gatehouse's own.
//
// What the network may do to it is bounded:
//   - a fetch never runs on a caller's context: a client that hangs up does
//     not fail the fetch that other requests wait for;
//   - a token naming an unknown kid fetches the set at most once per
//     MinInterval, and concurrent lookups share one fetch;
//   - a failed fetch keeps the keys already known and is retried after a
//     backoff (RetryMin, doubling, at most MinInterval), not after a whole
//     interval, so the first request after an outage recovers;
//   - keys older than MaxAge are still served while a background fetch
//     replaces them, so a slow JWKS endpoint never delays a known key;
//   - the keys only ever come from the configured URL: nothing in a token
//     names where they are.
//
// MicahParks/jwkset with keyfunc/v3 was measured for this job and does not do
// it: its refetch on an unknown kid runs on the caller's context and spends
// its rate-limit token first, so one stranger hanging up keeps a rotated key
// from loading for the whole limiter period, a provider that was down at
// startup stays unusable for that period after it recovers, and of 20
// concurrent requests bearing a newly rotated key 19 fail.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults for Config's zero values.
const (
	DefaultMinInterval  = 10 * time.Second
	DefaultMaxAge       = 5 * time.Minute
	DefaultRetryMin     = time.Second
	DefaultFetchTimeout = 10 * time.Second
	// MaxBytes bounds a JWKS response body.
	MaxBytes = 1 << 20
)

var (
	// ErrUnknownKey is wrapped when the key set was fetched and has no key
	// with the token's kid: the token is bad, not the key set.
	ErrUnknownKey = errors.New("jwks: no key with this kid")
	// ErrUnavailable is wrapped when the keys could not be had (no usable
	// set was ever fetched, the last fetch failed, or the caller's context
	// ended while waiting): the token may well be good.
	ErrUnavailable = errors.New("jwks: key set unavailable")
	// ErrNotRefetched is wrapped, besides ErrUnknownKey, when the kid is
	// unknown to a set fetched less than MinInterval ago and so not fetched
	// again for this lookup: a key the issuer published since then would be
	// found later. Callers whose senders retry (back-channel logout) may
	// answer "retry later" instead of "invalid".
	ErrNotRefetched = errors.New("jwks: key set not fetched again yet")
)

// Config configures a Cache.
type Config struct {
	// URL is the http(s) URL of the key set. Required.
	URL string
	// Client fetches the key set. If nil, a client with a FetchTimeout
	// timeout that does not follow redirects is used.
	Client *http.Client
	// Accept reports whether a key of the set may be used. Only public
	// signing keys (use "sig" or unset) that go-jose parses are offered to
	// it. If nil, every such key is used.
	Accept func(jose.JSONWebKey) bool
	// MinInterval is how often, at most, lookups of unknown kids fetch the
	// set. Zero means DefaultMinInterval.
	MinInterval time.Duration
	// MaxAge is how long fetched keys are used before a lookup starts a
	// background refresh (the keys keep serving meanwhile). Zero means
	// DefaultMaxAge.
	MaxAge time.Duration
	// RetryMin is the wait before retrying a failed fetch; it doubles with
	// each further failure, up to MinInterval. Zero means DefaultRetryMin.
	RetryMin time.Duration
	// FetchTimeout bounds one fetch. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Logger receives failed fetches. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Cache is a key set fetched from one URL. It is safe for concurrent use.
type Cache struct {
	url          string
	client       *http.Client
	accept       func(jose.JSONWebKey) bool
	minInterval  time.Duration
	maxAge       time.Duration
	retryMin     time.Duration
	fetchTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time

	mu        sync.Mutex
	byKID     map[string][]jose.JSONWebKey
	all       []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch; zero = never
	nextFetch time.Time // no fetch for an unknown kid or stale keys before this
	failures  int       // consecutive failed fetches
	lastErr   error     // outcome of the last fetch
	inflight  *fetch
}

// fetch is one fetch in progress; done closes when its outcome has landed.
type fetch struct {
	done chan struct{}
	err  error
}

// New checks cfg and returns an empty Cache. It fetches nothing: Refresh or
// the first Lookup does.
func New(cfg Config) (*Cache, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks: URL %q is not an absolute http(s) URL", cfg.URL)
	}
	c := &Cache{
		url:          cfg.URL,
		client:       cfg.Client,
		accept:       cfg.Accept,
		minInterval:  orDefault(cfg.MinInterval, DefaultMinInterval),
		maxAge:       orDefault(cfg.MaxAge, DefaultMaxAge),
		retryMin:     orDefault(cfg.RetryMin, DefaultRetryMin),
		fetchTimeout: orDefault(cfg.FetchTimeout, DefaultFetchTimeout),
		log:          cfg.Logger,
		now:          cfg.Now,
	}
	if c.client == nil {
		c.client = &http.Client{
			Timeout:       c.fetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Refresh fetches the set now, or joins the fetch in progress, and waits
// for it. It ignores MinInterval: call it at startup (to load the keys
// before serving) or from a timer, never per request. If ctx ends first,
// the fetch goes on and Refresh returns ctx's error. Errors wrap
// ErrUnavailable.
func (c *Cache) Refresh(ctx context.Context) error {
	c.mu.Lock()
	f := c.startLocked(ctx, c.now(), true)
	c.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, f.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// Wait waits for the fetch in progress, if any, to land.
func (c *Cache) Wait(ctx context.Context) error {
	c.mu.Lock()
	f := c.inflight
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Lookup returns the keys with this kid, or every key when kid is empty
// (a token without a kid). Keys older than MaxAge are returned at once and
// refreshed in the background. An unknown kid fetches the set if MinInterval
// (or, after a failure, the backoff) allows, and waits for that fetch or
// for ctx. The error wraps ErrUnknownKey when a good set has no such key
// (and ErrNotRefetched when that set was not fetched for this lookup), else
// ErrUnavailable.
func (c *Cache) Lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	now := c.now()
	c.mu.Lock()
	if keys := c.findLocked(kid); len(keys) > 0 {
		if now.Sub(c.fetchedAt) >= c.maxAge {
			c.startLocked(ctx, now, false) // the old keys serve meanwhile
		}
		c.mu.Unlock()
		return keys, nil
	}
	f := c.startLocked(ctx, now, false)
	c.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if keys := c.findLocked(kid); len(keys) > 0 {
		return keys, nil
	}
	switch {
	case c.lastErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, c.lastErr)
	case c.fetchedAt.IsZero():
		return nil, fmt.Errorf("%w: not fetched yet", ErrUnavailable)
	case f == nil:
		return nil, fmt.Errorf("%w: %q (%w)", ErrUnknownKey, clip(kid), ErrNotRefetched)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKey, clip(kid))
}

func (c *Cache) findLocked(kid string) []jose.JSONWebKey {
	if kid == "" {
		return c.all
	}
	return c.byKID[kid]
}

// startLocked returns the fetch in progress, or starts one if force is set
// or nextFetch has come, or returns nil. The fetch runs on a context that
// keeps trigger's values but not its cancellation.
func (c *Cache) startLocked(trigger context.Context, now time.Time, force bool) *fetch {
	if c.inflight != nil {
		return c.inflight
	}
	// A clock set back by more than an interval counts as the wait being over.
	if wait := c.nextFetch.Sub(now); !force && wait > 0 && wait <= c.minInterval {
		return nil
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight = f
	c.nextFetch = now.Add(c.minInterval)
	go c.run(context.WithoutCancel(trigger), f, now)
	return f
}

// run performs one fetch and lands its outcome: new keys on success; on
// failure the old keys stay and the next attempt may come after the backoff.
func (c *Cache) run(ctx context.Context, f *fetch, started time.Time) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()
	byKID, all, err := c.get(ctx)
	c.mu.Lock()
	if err == nil {
		c.byKID, c.all = byKID, all
		c.fetchedAt = c.now()
		c.failures = 0
	} else {
		c.failures++
		backoff := c.retryMin << min(c.failures-1, 20)
		c.nextFetch = started.Add(min(backoff, c.minInterval))
	}
	c.lastErr = err
	c.inflight = nil
	f.err = err
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("fetching signing keys failed; known keys stay in use", "url", c.url, "err", err)
	}
	close(f.done)
}

// get fetches and parses the set.
func (c *Cache) get(ctx context.Context) (map[string][]jose.JSONWebKey, []jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: fetching %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("jwks: fetching %s: status %s", c.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: reading %s: %w", c.url, err)
	}
	if len(body) > MaxBytes {
		return nil, nil, fmt.Errorf("jwks: %s is larger than %d bytes", c.url, MaxBytes)
	}
	all, err := parse(body, c.accept)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: %s: %w", c.url, err)
	}
	byKID := make(map[string][]jose.JSONWebKey, len(all))
	for _, k := range all {
		byKID[k.KeyID] = append(byKID[k.KeyID], k)
	}
	return byKID, all, nil
}

// parse returns the usable keys of a JWKS document. Keys that cannot be
// used (unknown types, private or encryption keys, rejected by accept) are
// skipped rather than failing the whole set, so one exotic key cannot lock
// out the others; a set with no usable key is an error.
func parse(body []byte, accept func(jose.JSONWebKey) bool) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	var out []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if accept != nil && !accept(k) {
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no usable signing keys")
	}
	return out, nil
}

// clip shortens an attacker-chosen kid before it goes into an error message.
func clip(s string) string {
	const maxQuoted = 64
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}
