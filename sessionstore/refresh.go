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
//
// Two things of the stored session are kept whatever s says: LastSeen,
// which only Save and Touch move (a refresh that read the session a while
// ago must not move it backwards), and the absolute lifetime, which Replace
// never extends (the revocation indexes are scored by it).
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
	c.LastSeen = e.s.LastSeen
	if c.ExpiresAt.After(e.s.ExpiresAt) {
		c.ExpiresAt = e.s.ExpiresAt
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

// replaceScript writes the session record only while a session saved with
// the same key exists. It leaves LastSeen (its own field, which Touch owns)
// and the index list alone, and only ever shortens the expiry.
//
// KEYS[1] session; ARGV[1] key verifier, ARGV[2] record, ARGV[3] ttl (ms).
var replaceScript = redis.NewScript(replaceScriptLua)

const replaceScriptLua = `
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
	return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
local left = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[3])
if left < 0 or ttl < left then
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`

// Replace stores s under t only if a session saved with t.Key still exists,
// in one atomic step, returning ErrNotFound otherwise. Like Memory.Replace
// it keeps the stored LastSeen and never extends the session's lifetime.
func (r *Redis) Replace(ctx context.Context, t Ticket, s *Session) error {
	if err := checkSavable(s); err != nil {
		return err
	}
	h := storeHash(t.ID)
	ttl := s.ExpiresAt.Sub(r.now())
	if ttl < time.Millisecond {
		return ErrNotFound
	}
	data, _, err := r.sealed(t, h, s)
	if err != nil {
		return err
	}
	verifier := keyVerifier(t.Key)
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	n, err := replaceScript.Run(ctx, r.client, []string{r.key(h)}, verifier[:], data, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("sessionstore: redis replace: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// lockScript takes the lock unless it is held until a time still ahead by
// the caller's clock. The time, not only the key's own expiry, decides, so
// every replica and the tests' fake clocks agree on when it is free; PX
// only keeps the key from lingering.
//
// KEYS[1] lock; ARGV[1] now, ARGV[2] held until (Unix ms), ARGV[3] ttl (ms).
var lockScript = redis.NewScript(lockScriptLua)

const lockScriptLua = `
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > tonumber(ARGV[1]) then
	return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

// TryLock takes a lock named after the session for ttl across every
// replica sharing this Redis, reporting whether this caller got it. The
// lock key sits in the session's hash slot.
func (r *Redis) TryLock(ctx context.Context, t Ticket, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	key := r.prefix + ":l:{" + storeHash(t.ID) + "}"
	now := r.now()
	n, err := lockScript.Run(ctx, r.client, []string{key}, now.UnixMilli(), now.Add(ttl).UnixMilli(), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("sessionstore: redis lock: %w", err)
	}
	return n == 1, nil
}

// Replace replaces the session in Redis and drops every replica's copy.
func (c *Cached) Replace(ctx context.Context, t Ticket, s *Session) error {
	if err := c.store.Replace(ctx, t, s); err != nil {
		return err
	}
	c.invalidate(ctx, storeHash(t.ID))
	return nil
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
	return c.view(ctx, t)
}

// LoadFresh is Load: the Memory store has no cache in front of it.
func (m *Memory) LoadFresh(ctx context.Context, t Ticket) (*Session, error) { return m.Load(ctx, t) }

// LoadFresh is Load: every Redis read is fresh.
func (r *Redis) LoadFresh(ctx context.Context, t Ticket) (*Session, error) { return r.Load(ctx, t) }

// LoadFresh reads the session from Redis, never from this replica's cache,
// and drops any cached copy that turns out different. A refresh must start
// from what is stored: a cached copy may predate another replica's refresh,
// whose rotated refresh token it would then present (and lose the grant).
func (c *Cached) LoadFresh(ctx context.Context, t Ticket) (*Session, error) {
	s, err := c.store.Load(ctx, t)
	c.drop(storeHash(t.ID))
	return s, err
}
