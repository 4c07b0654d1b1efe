package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// An idle check judges a session by its LastSeen. A replica's cached copy
// may be behind: another replica saw the user since. So the session is
// deleted for idleness only on the authoritative copy, re-read at the
// moment of deleting it.

// DeleteIfIdle deletes the session saved under t if, as stored, it is over
// at now: past its ExpiresAt, or idle for longer than idle (zero or less
// disables the idle check, as in Session.Expired). It reports whether the
// session has ended: true if it was deleted or was not there (or not under
// t.Key), false if it is still in use.
func (m *Memory) DeleteIfIdle(_ context.Context, t Ticket, idle time.Duration, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.liveLocked(t)
	if err != nil {
		return true, nil
	}
	if !e.s.Expired(now, idle) {
		return false, nil
	}
	m.removeLocked(e)
	return true, nil
}

// DeleteIfIdle deletes the session saved under t if, as stored in Redis, it
// is over at now (see Memory.DeleteIfIdle). The read and the delete are one
// optimistic transaction (WATCH): a Touch in between means the session is
// in use, and it is kept.
func (r *Redis) DeleteIfIdle(ctx context.Context, t Ticket, idle time.Duration, now time.Time) (bool, error) {
	h := storeHash(t.ID)
	key := r.key(h)
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	var deleted *Session
	ended := false
	err := r.client.Watch(ctx, func(tx *redis.Tx) error {
		s, err := r.read(ctx, tx, t)
		if errors.Is(err, ErrNotFound) {
			ended = true
			return nil
		}
		if err != nil {
			return err
		}
		if !s.Expired(now, idle) {
			return nil
		}
		if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			return nil
		}); err != nil {
			return err
		}
		ended, deleted = true, s
		return nil
	}, key)
	switch {
	case errors.Is(err, redis.TxFailedErr):
		return false, nil // written meanwhile: someone is using it
	case err != nil:
		return false, fmt.Errorf("sessionstore: redis idle check: %w", err)
	}
	if deleted != nil {
		if err := r.unindex(ctx, h, r.indexKeys(deleted)); err != nil {
			return true, err
		}
	}
	return ended, nil
}

// unindex removes the session h from index keys.
func (r *Redis) unindex(ctx context.Context, h string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ZRem(ctx, k, h)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis: removing an ended session from its indexes: %w", err)
	}
	return nil
}

// DeleteIfIdle re-reads the session from Redis, not from this replica's
// cache, and deletes it only if it is over as stored; then every replica
// drops it. When it is still in use, this replica's stale copy is dropped
// so the next request reads the current one.
func (c *Cached) DeleteIfIdle(ctx context.Context, t Ticket, idle time.Duration, now time.Time) (bool, error) {
	ended, err := c.store.DeleteIfIdle(ctx, t, idle, now)
	h := storeHash(t.ID)
	c.drop(h)
	if ended {
		c.invalidate(ctx, h)
	}
	return ended, err
}
