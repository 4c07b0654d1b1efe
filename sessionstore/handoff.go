package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// One-time values: a short-lived value that can be taken exactly once, on
// any replica (the multi-host sign-in's codes). The key is hashed before it
// is stored, so what the store holds cannot be redeemed by a reader of it.

// maxOnce bounds the one-time values a Memory store holds at once.
const maxOnce = 10000

// ErrTooMany is returned by PutOnce when a Memory store already holds as
// many one-time values as it keeps.
var ErrTooMany = errors.New("sessionstore: too many one-time values pending")

// PutOnce keeps value under key for ttl, to be taken once.
func (m *Memory) PutOnce(_ context.Context, key string, value []byte, ttl time.Duration) error {
	now := m.now()
	_, err := m.once.put(now, keyHash("once", key), append([]byte(nil), value...), now.Add(ttl), false, maxOnce, ErrTooMany)
	return err
}

// TakeOnce returns the value under key and forgets it; ErrNotFound when
// there is none: unknown, already taken or expired.
func (m *Memory) TakeOnce(_ context.Context, key string) ([]byte, error) {
	v, ok := m.once.take(m.now(), keyHash("once", key))
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

func (r *Redis) onceKey(key string) string { return r.prefix + ":o:{" + keyHash("once", key) + "}" }

// PutOnce keeps value under key for ttl, to be taken once.
func (r *Redis) PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.client.Set(ctx, r.onceKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("sessionstore: redis: one-time value: %w", err)
	}
	return nil
}

// takeScript is GETDEL for servers before Redis 6.2: read and delete in one
// step, so two replicas can never both take a value.
var takeScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v`)

// TakeOnce returns the value under key and deletes it; ErrNotFound when
// there is none: unknown, already taken or expired.
func (r *Redis) TakeOnce(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	v, err := takeScript.Run(ctx, r.client, []string{r.onceKey(key)}).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("sessionstore: redis: one-time value: %w", err)
	}
	return []byte(v), nil
}

// PutOnce keeps value under key for ttl, to be taken once, on any replica.
func (c *Cached) PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.store.PutOnce(ctx, key, value, ttl)
}

// TakeOnce returns the value under key and deletes it, on any replica.
func (c *Cached) TakeOnce(ctx context.Context, key string) ([]byte, error) {
	return c.store.TakeOnce(ctx, key)
}
