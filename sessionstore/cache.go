package sessionstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultCacheTTL is CacheConfig.TTL when it is not set.
	DefaultCacheTTL = 5 * time.Second
	// DefaultCacheEntries is CacheConfig.MaxEntries when it is not set.
	DefaultCacheEntries = 100000

	// maxPendingInvalidations bounds the invalidations kept for retrying
	// while Redis refuses publishes; beyond it they are counted as lost and
	// the cache TTL alone bounds how long other replicas may serve the
	// sessions concerned.
	maxPendingInvalidations = 10000
	// invalidationBatch is how many store hashes one message carries.
	invalidationBatch = 256
	// retryMin and retryMax bound the backoff between publish retries.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// CacheConfig configures a Cached store.
type CacheConfig struct {
	// TTL bounds how long a session read from Redis is reused without asking
	// Redis again: the safety net should an invalidation message be lost.
	// Zero means DefaultCacheTTL.
	TTL time.Duration
	// MaxEntries bounds the cache. When full, entries older than TTL go
	// first, then arbitrary ones until a quarter is free. Zero means
	// DefaultCacheEntries.
	MaxEntries int
	// Logger receives subscription and publish trouble; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Cached puts an in-process cache in front of a Redis store, so the steady
// request path does not make a Redis round trip. Every replica subscribes to
// a Redis channel on which writes publish the sessions' store hashes;
// receiving one drops those sessions at once, so a sign-out on one replica
// takes effect on all of them. When the subscription is (re)established the
// whole cache is dropped, since messages may have been missed meanwhile.
//
// A write that reached Redis is never reported as failed because its
// invalidation could not be published: the publish is retried in the
// background (until delivered, or until TTL has passed and no replica can
// still hold a copy older than the write), counted in Stats, and Health
// reports it meanwhile.
type Cached struct {
	store   *Redis
	ttl     time.Duration
	max     int
	now     func() time.Time
	log     *slog.Logger
	channel string

	mu     sync.RWMutex
	byID   map[ID]*cacheEntry
	byHash map[string]ID
	// loads tracks Redis reads in flight per store hash; an invalidation
	// arriving meanwhile bumps gen, and the read's result is then not
	// cached (it may predate the write the message announces).
	loads    map[string]*inflight
	flushGen uint64 // bumped by every flush, which invalidates every read in flight

	pendMu  sync.Mutex
	pending map[string]time.Time // invalidations to publish again, with when they first failed
	kick    chan struct{}

	hits, misses, received, subscriptions atomic.Uint64
	publishFailures, lost, expiredRetries atomic.Uint64
	operatorRevoked                       atomic.Uint64

	ps         *redis.PubSub
	stop       chan struct{}
	done       chan struct{} // subscriber exited
	retryDone  chan struct{} // retrier exited
	subscribed chan struct{} // closed once the first subscription is active
	closeOnce  sync.Once

	// testHookLoaded, if set, runs after a Redis read and before its result
	// is cached: tests deliver an invalidation there. Guarded by mu.
	testHookLoaded func()
	// testHookMessage, if set, receives every invalidation message's payload
	// after it has been applied. Guarded by mu.
	testHookMessage func(payload string)
}

type cacheEntry struct {
	sess    *Session
	key     [32]byte
	hash    string
	fetched time.Time
}

type inflight struct {
	n   int    // reads in flight
	gen uint64 // invalidations seen while any was in flight
}

// NewCached wraps store and starts the invalidation subscriber and the
// publish retrier; Close stops them.
func NewCached(store *Redis, cfg CacheConfig) *Cached {
	c := &Cached{
		store:      store,
		ttl:        cfg.TTL,
		max:        cfg.MaxEntries,
		now:        cfg.Now,
		log:        cfg.Logger,
		channel:    store.invalidationChannel(),
		byID:       map[ID]*cacheEntry{},
		byHash:     map[string]ID{},
		loads:      map[string]*inflight{},
		pending:    map[string]time.Time{},
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		retryDone:  make(chan struct{}),
		subscribed: make(chan struct{}),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max <= 0 {
		c.max = DefaultCacheEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ps = store.client.Subscribe(context.Background(), c.channel)
	go c.subscribe()
	go c.retryLoop()
	return c
}

// subscribe runs until Close closes the subscription.
func (c *Cached) subscribe() {
	defer close(c.done)
	first := true
	// With subscriptions in the channel we learn about every (re)connect.
	for msg := range c.ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second)) {
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				c.flush()
				c.subscriptions.Add(1)
				if first {
					close(c.subscribed)
					first = false
				} else {
					c.log.Info("session cache: invalidation subscription re-established; cache dropped")
				}
			}
		case *redis.Message:
			c.received.Add(1)
			for _, h := range strings.Fields(m.Payload) {
				if n, ok := operatorRevocations(h); ok {
					c.operatorRevoked.Add(n)
					continue
				}
				c.drop(h)
			}
			c.mu.RLock()
			hook := c.testHookMessage
			c.mu.RUnlock()
			if hook != nil {
				hook(m.Payload)
			}
		}
	}
}

func (c *Cached) flush() {
	c.mu.Lock()
	clear(c.byID)
	clear(c.byHash)
	c.flushGen++
	c.mu.Unlock()
}

func (c *Cached) drop(hash string) {
	c.mu.Lock()
	if id, ok := c.byHash[hash]; ok {
		delete(c.byID, id)
		delete(c.byHash, hash)
	}
	if l := c.loads[hash]; l != nil {
		l.gen++
	}
	c.mu.Unlock()
}

// invalidate drops the sessions here and tells every replica to drop them.
// It never fails: a publish Redis refuses is queued for the retrier.
func (c *Cached) invalidate(ctx context.Context, hashes ...string) {
	for _, h := range hashes {
		c.drop(h)
	}
	// The write already happened: a caller giving up must not cancel its announcement.
	ctx = context.WithoutCancel(ctx)
	for len(hashes) > 0 {
		n := min(len(hashes), invalidationBatch)
		batch := hashes[:n]
		hashes = hashes[n:]
		if err := c.publish(ctx, batch); err != nil {
			c.log.Warn("session cache: publishing an invalidation failed; retrying in the background", "sessions", len(batch), "err", err)
			c.queue(batch)
		}
	}
}

func (c *Cached) publish(ctx context.Context, hashes []string) error {
	ctx, cancel := context.WithTimeout(ctx, c.store.opTimeout)
	defer cancel()
	if err := c.store.client.Publish(ctx, c.channel, strings.Join(hashes, " ")).Err(); err != nil {
		c.publishFailures.Add(1)
		return fmt.Errorf("sessionstore: publishing invalidation: %w", err)
	}
	return nil
}

// queue queues hashes for the retrier.
func (c *Cached) queue(hashes []string) {
	now := c.now()
	c.pendMu.Lock()
	for _, h := range hashes {
		if _, ok := c.pending[h]; ok {
			continue
		}
		if len(c.pending) >= maxPendingInvalidations {
			c.lost.Add(1)
			continue
		}
		c.pending[h] = now
	}
	c.pendMu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// retryLoop publishes queued invalidations again, backing off while Redis
// keeps refusing them.
func (c *Cached) retryLoop() {
	defer close(c.retryDone)
	backoff := retryMin
	var timer *time.Timer
	for {
		var fire <-chan time.Time
		if timer != nil {
			fire = timer.C
		}
		select {
		case <-c.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-c.kick:
			if timer == nil {
				timer = time.NewTimer(backoff)
			}
		case <-fire:
			timer = nil
			if c.retryPending() {
				backoff = retryMin
			} else {
				backoff = min(2*backoff, retryMax)
				timer = time.NewTimer(backoff)
			}
		}
	}
}

// retryPending publishes every queued invalidation once and reports
// whether none is left.
func (c *Cached) retryPending() bool {
	now := c.now()
	c.pendMu.Lock()
	var batch []string
	for h, since := range c.pending {
		if now.Sub(since) >= c.ttl {
			// No replica can still hold a copy read before the write: moot.
			delete(c.pending, h)
			c.expiredRetries.Add(1)
			continue
		}
		batch = append(batch, h)
	}
	c.pendMu.Unlock()
	ok := true
	for len(batch) > 0 {
		n := min(len(batch), invalidationBatch)
		if err := c.publish(context.Background(), batch[:n]); err != nil {
			ok = false
			break
		}
		c.pendMu.Lock()
		for _, h := range batch[:n] {
			delete(c.pending, h)
		}
		c.pendMu.Unlock()
		batch = batch[n:]
	}
	return ok
}

// Health reports what keeps other replicas from learning of this one's
// writes, or this one of theirs: invalidations not yet delivered, or an
// invalidation subscription that is not up. Readiness should report it:
// while it fails, revocations may take up to the cache TTL to reach every
// replica.
func (c *Cached) Health(ctx context.Context) error {
	c.pendMu.Lock()
	n := len(c.pending)
	c.pendMu.Unlock()
	var errs []error
	if n > 0 {
		errs = append(errs, fmt.Errorf("sessionstore: %d session invalidations not yet delivered to other replicas", n))
	}
	select {
	case <-c.subscribed:
		ctx, cancel := context.WithTimeout(ctx, c.store.opTimeout)
		defer cancel()
		if err := c.ps.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sessionstore: invalidation subscription: %w", err))
		}
	default:
		errs = append(errs, errors.New("sessionstore: invalidation subscription not established yet"))
	}
	return errors.Join(errs...)
}

// CacheStats are a Cached store's counters since it started.
type CacheStats struct {
	// Hits and Misses count reads served from memory and from Redis.
	Hits, Misses uint64
	// Entries is how many sessions are cached now.
	Entries int
	// InvalidationsReceived counts invalidation messages from any replica.
	InvalidationsReceived uint64
	// Subscriptions counts (re)established invalidation subscriptions; more
	// than one means the connection was lost and the cache dropped.
	Subscriptions uint64
	// PublishFailures counts publish attempts Redis refused or did not answer.
	PublishFailures uint64
	// PendingInvalidations are waiting to be published again.
	PendingInvalidations int
	// LostInvalidations were not queued because the queue was full, and
	// ExpiredInvalidations were dropped from it once moot (older than the
	// TTL); for both, the cache TTL alone bounded the staleness.
	LostInvalidations, ExpiredInvalidations uint64
	// OperatorRevocations counts the sessions operators ended with
	// `gatehouse sessions revoke` (Admin.Revoke) while this replica listened:
	// every replica counts each one.
	OperatorRevocations uint64
}

// Stats returns the cache's counters, for metrics.
func (c *Cached) Stats() CacheStats {
	c.mu.RLock()
	entries := len(c.byID)
	c.mu.RUnlock()
	c.pendMu.Lock()
	pending := len(c.pending)
	c.pendMu.Unlock()
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: entries,
		InvalidationsReceived: c.received.Load(), Subscriptions: c.subscriptions.Load(),
		PublishFailures: c.publishFailures.Load(), PendingInvalidations: pending,
		LostInvalidations: c.lost.Load(), ExpiredInvalidations: c.expiredRetries.Load(),
		OperatorRevocations: c.operatorRevoked.Load(),
	}
}

// Save stores s, drops every replica's cached copy, and caches it here.
func (c *Cached) Save(ctx context.Context, t Ticket, s *Session) error {
	if err := c.store.Save(ctx, t, s); err != nil {
		return err
	}
	c.invalidate(ctx, storeHash(t.ID))
	return nil
}

// Load returns the session from the cache when it is fresh, else from Redis.
func (c *Cached) Load(ctx context.Context, t Ticket) (*Session, error) {
	s, err := c.view(ctx, t)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// view returns the shared cached copy, reading Redis on a miss.
func (c *Cached) view(ctx context.Context, t Ticket) (*Session, error) {
	now := c.now()
	if s, ok := c.fresh(t, now); ok {
		c.hits.Add(1)
		if !now.Before(s.ExpiresAt) {
			return nil, ErrNotFound
		}
		return s, nil
	}
	c.misses.Add(1)
	hash := storeHash(t.ID)

	c.mu.Lock()
	l := c.loads[hash]
	if l == nil {
		l = &inflight{}
		c.loads[hash] = l
	}
	l.n++
	gen, flushGen := l.gen, c.flushGen
	hook := c.testHookLoaded
	c.mu.Unlock()

	s, err := c.store.Load(ctx, t)
	if hook != nil {
		hook()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	l.n--
	if l.n == 0 {
		delete(c.loads, hash)
	}
	if err != nil {
		return nil, err
	}
	// An invalidation arrived while Redis was being read: the copy may be
	// older than the write it announced. Serve it (it was current when
	// read) but do not keep it.
	if l.gen != gen || c.flushGen != flushGen {
		return s, nil
	}
	if len(c.byID) >= c.max {
		c.evictLocked(now)
	}
	c.byID[t.ID] = &cacheEntry{sess: s, key: t.Key, hash: hash, fetched: now}
	c.byHash[hash] = t.ID
	return s, nil
}

// evictLocked makes room: first the entries past the TTL, then arbitrary
// ones until a quarter of the cache is free, so a full cache costs one
// sweep per MaxEntries/4 inserts, not one per insert.
func (c *Cached) evictLocked(now time.Time) {
	for id, e := range c.byID {
		if now.Sub(e.fetched) >= c.ttl {
			delete(c.byID, id)
			delete(c.byHash, e.hash)
		}
	}
	for id, e := range c.byID {
		if len(c.byID) <= c.max-c.max/4-1 {
			break
		}
		delete(c.byID, id)
		delete(c.byHash, e.hash)
	}
}

// fresh returns the cached session for t if it is within the TTL and was
// loaded with the same key.
func (c *Cached) fresh(t Ticket, now time.Time) (*Session, bool) {
	c.mu.RLock()
	e := c.byID[t.ID]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) >= c.ttl || subtle.ConstantTimeCompare(e.key[:], t.Key[:]) != 1 {
		return nil, false
	}
	return e.sess, true
}

// Touch records activity in Redis and in the cached copy.
func (c *Cached) Touch(ctx context.Context, t Ticket, seen time.Time) error {
	if err := c.store.Touch(ctx, t, seen); err != nil {
		return err
	}
	c.mu.Lock()
	if e := c.byID[t.ID]; e != nil {
		cp := *e.sess
		cp.LastSeen = seen
		c.byID[t.ID] = &cacheEntry{sess: &cp, key: e.key, hash: e.hash, fetched: e.fetched}
	}
	c.mu.Unlock()
	return nil
}

// Delete removes the session from Redis and from every replica's cache.
func (c *Cached) Delete(ctx context.Context, t Ticket) error {
	if err := c.store.Delete(ctx, t); err != nil {
		return err
	}
	c.invalidate(ctx, storeHash(t.ID))
	return nil
}

// Ping reports whether Redis answers.
func (c *Cached) Ping(ctx context.Context) error { return c.store.Ping(ctx) }

// Check verifies the Redis server version (see Redis.Check).
func (c *Cached) Check(ctx context.Context) error { return c.store.Check(ctx) }

// Close stops the subscriber and the retrier and closes the Redis store.
// Invalidations still queued are given up: the cache TTL bounds them.
func (c *Cached) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.retryDone
		_ = c.ps.Close()
		<-c.done
		err = c.store.Close()
	})
	return err
}
