package sessionstore

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replace stores s under t only if a session saved with t.Key still exists
// there, returning ErrNotFound otherwise. A background refresh uses it so
// that it can never bring back a session that was revoked meanwhile.
func (m *Memory) Replace(_ context.Context, t Ticket, s *Session) error {
	if err := checkSavable(s); err != nil {
		return err
	}
	c := s.Clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.liveLocked(t)
	if err != nil {
		return err
	}
	e.s = c
	heap.Fix(&m.byExpiry, e.heapIndex)
	return nil
}

// TryLock takes a lock named after the session for ttl, reporting whether
// this caller got it. The lock is not released: it expires, which also rate
// limits whatever it guards.
func (m *Memory) TryLock(_ context.Context, t Ticket, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = map[ID]time.Time{}
	}
	if until, ok := m.locks[t.ID]; ok && now.Before(until) {
		return false, nil
	}
	if len(m.locks) > 2*m.max {
		for id, until := range m.locks {
			if !now.Before(until) {
				delete(m.locks, id)
			}
		}
	}
	m.locks[t.ID] = now.Add(ttl)
	return true, nil
}

// replaceScript writes the session's fields only while a session saved with
// the same key exists, and renews its expiry.
var replaceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
	return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 's', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// Replace stores s under t only if a session saved with t.Key still exists,
// in one atomic step, returning ErrNotFound otherwise.
func (r *Redis) Replace(ctx context.Context, t Ticket, s *Session) error {
	if err := checkSavable(s); err != nil {
		return err
	}
	h := storeHash(t.ID)
	ttl := s.ExpiresAt.Sub(r.now())
	if ttl < time.Millisecond {
		return ErrNotFound
	}
	data, seen, err := r.sealed(t, h, s)
	if err != nil {
		return err
	}
	verifier := keyVerifier(t.Key)
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	n, err := replaceScript.Run(ctx, r.client, []string{r.key(h)}, verifier[:], data, seen, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("sessionstore: redis replace: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// TryLock takes a lock named after the session (SET NX PX) for ttl across
// every replica sharing this Redis, reporting whether this caller got it.
// The lock key sits in the session's hash slot.
func (r *Redis) TryLock(ctx context.Context, t Ticket, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	key := r.prefix + ":l:{" + storeHash(t.ID) + "}"
	ok, err := r.client.SetNX(ctx, key, "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("sessionstore: redis lock: %w", err)
	}
	return ok, nil
}

// Replace replaces the session in Redis and drops every replica's copy.
func (c *Cached) Replace(ctx context.Context, t Ticket, s *Session) error {
	if err := c.store.Replace(ctx, t, s); err != nil {
		return err
	}
	c.drop(storeHash(t.ID))
	return c.publish(ctx, t)
}

// TryLock takes the session's lock in Redis.
func (c *Cached) TryLock(ctx context.Context, t Ticket, ttl time.Duration) (bool, error) {
	return c.store.TryLock(ctx, t, ttl)
}

// View returns the stored session itself, without the copy Load makes, or
// ErrNotFound like Load. The caller must not modify it or anything it
// refers to: it is shared with the store and with other requests. For the
// read-only hot path.
func (m *Memory) View(_ context.Context, t Ticket) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.liveLocked(t)
	if err != nil {
		return nil, err
	}
	m.moveToFrontLocked(e)
	return e.s, nil
}

// View returns the cached session itself when it is fresh (else it loads
// from Redis, as Load does). The caller must not modify it or anything it
// refers to. For the read-only hot path.
func (c *Cached) View(ctx context.Context, t Ticket) (*Session, error) {
	if s, ok := c.fresh(t); ok {
		if !c.now().Before(s.ExpiresAt) {
			return nil, ErrNotFound
		}
		return s, nil
	}
	s, err := c.Load(ctx, t)
	return s, err
}
