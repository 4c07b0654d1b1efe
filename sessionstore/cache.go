package sessionstore

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultCacheTTL is CacheConfig.TTL when it is not set.
	DefaultCacheTTL = 5 * time.Second
	// DefaultCacheEntries is CacheConfig.MaxEntries when it is not set.
	DefaultCacheEntries = 100000
)

// CacheConfig configures a Cached store.
type CacheConfig struct {
	// TTL bounds how long a session read from Redis is reused without asking
	// Redis again: the safety net should an invalidation message be lost.
	// Zero means DefaultCacheTTL.
	TTL time.Duration
	// MaxEntries bounds the cache; when full it starts over. Zero means
	// DefaultCacheEntries.
	MaxEntries int
	// Logger receives subscription trouble; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Cached puts an in-process cache in front of a Redis store, so the steady
// request path does not make a Redis round trip. Every replica subscribes to
// a Redis channel on which Save and Delete publish the session's store hash;
// receiving one drops that session at once, so a sign-out on one replica
// takes effect on all of them. When the subscription is (re)established the
// whole cache is dropped, since messages may have been missed meanwhile.
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

	ps         *redis.PubSub
	done       chan struct{}
	subscribed chan struct{} // closed once the first subscription is active
}

type cacheEntry struct {
	sess    *Session
	key     [32]byte
	hash    string
	fetched time.Time
}

// NewCached wraps store and starts the invalidation subscriber; Close stops it.
func NewCached(store *Redis, cfg CacheConfig) *Cached {
	c := &Cached{
		store:   store,
		ttl:     cfg.TTL,
		max:     cfg.MaxEntries,
		now:     cfg.Now,
		log:     cfg.Logger,
		channel: store.prefix + ":revoked",
		byID:    map[ID]*cacheEntry{},
		byHash:  map[string]ID{},
		done:    make(chan struct{}),

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
				if first {
					close(c.subscribed)
					first = false
				}
			}
		case *redis.Message:
			c.drop(m.Payload)
		}
	}
}

func (c *Cached) flush() {
	c.mu.Lock()
	clear(c.byID)
	clear(c.byHash)
	c.mu.Unlock()
}

func (c *Cached) drop(hash string) {
	c.mu.Lock()
	if id, ok := c.byHash[hash]; ok {
		delete(c.byID, id)
		delete(c.byHash, hash)
	}
	c.mu.Unlock()
}

func (c *Cached) publish(ctx context.Context, t Ticket) error {
	ctx, cancel := context.WithTimeout(ctx, c.store.opTimeout)
	defer cancel()
	if err := c.store.client.Publish(ctx, c.channel, storeHash(t.ID)).Err(); err != nil {
		return fmt.Errorf("sessionstore: publishing invalidation: %w", err)
	}
	return nil
}

// Save stores s, drops every replica's cached copy, and caches it here.
func (c *Cached) Save(ctx context.Context, t Ticket, s *Session) error {
	if err := c.store.Save(ctx, t, s); err != nil {
		return err
	}
	c.drop(storeHash(t.ID))
	return c.publish(ctx, t)
}

// Load returns the session from the cache when it is fresh, else from Redis.
func (c *Cached) Load(ctx context.Context, t Ticket) (*Session, error) {
	now := c.now()
	if s, ok := c.fresh(t); ok {
		if !now.Before(s.ExpiresAt) {
			return nil, ErrNotFound
		}
		return s.Clone(), nil
	}
	s, err := c.store.Load(ctx, t)
	if err != nil {
		return nil, err
	}
	hash := storeHash(t.ID)
	c.mu.Lock()
	if len(c.byID) >= c.max {
		clear(c.byID)
		clear(c.byHash)
	}
	c.byID[t.ID] = &cacheEntry{sess: s.Clone(), key: t.Key, hash: hash, fetched: now}
	c.byHash[hash] = t.ID
	c.mu.Unlock()
	return s, nil
}

// fresh returns the cached session for t if it is within the TTL and was
// loaded with the same key.
func (c *Cached) fresh(t Ticket) (*Session, bool) {
	c.mu.RLock()
	e := c.byID[t.ID]
	c.mu.RUnlock()
	if e == nil || c.now().Sub(e.fetched) >= c.ttl || subtle.ConstantTimeCompare(e.key[:], t.Key[:]) != 1 {
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
	c.drop(storeHash(t.ID))
	return c.publish(ctx, t)
}

// Ping reports whether Redis answers.
func (c *Cached) Ping(ctx context.Context) error { return c.store.Ping(ctx) }

// Close stops the subscriber and closes the Redis store.
func (c *Cached) Close() error {
	_ = c.ps.Close()
	<-c.done
	return c.store.Close()
}
