package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// One-shot tokens: a token that may be used once (an OpenID Connect
// back-channel logout token, by its jti) is marked used until it could no
// longer be accepted anyway, on every replica, so a replay is refused
// wherever it arrives. The key is hashed before it is stored.

// maxUsed bounds the used keys a Memory store holds at once.
const maxUsed = 100000

// ErrTooManyUsed is returned by Memory.MarkUsed when it already holds as many
// used keys as it keeps, none of them expired. The caller should refuse the
// token for now (a 5xx, so it is retried) rather than accept a replay.
var ErrTooManyUsed = errors.New("sessionstore: too many one-shot keys remembered")

// errUntilPassed: MarkUsed was asked to remember a key for no time at all,
// which can only be a caller's mistake.
func errUntilPassed(until time.Time) error {
	return fmt.Errorf("sessionstore: one-shot key: until %s has passed", until.UTC().Format(time.RFC3339))
}

// MarkUsed marks key used until until and reports whether it was not used
// yet (first). Of concurrent calls for one key exactly one gets first =
// true. until must be in the future.
func (m *Memory) MarkUsed(_ context.Context, key string, until time.Time) (first bool, err error) {
	now := m.now()
	if !until.After(now) {
		return false, errUntilPassed(until)
	}
	return m.used.put(now, keyHash("used", key), nil, until, true, maxUsed, ErrTooManyUsed)
}

// UnmarkUsed forgets that key was used, so a token whose processing failed
// after MarkUsed can be tried again.
func (m *Memory) UnmarkUsed(_ context.Context, key string) error {
	m.used.take(m.now(), keyHash("used", key))
	return nil
}

// usedKey is the Redis key of a used key: one key per token, under the
// configured prefix, its hash in braces like every other key of the store.
func (r *Redis) usedKey(key string) string { return r.prefix + ":r:{" + keyHash("used", key) + "}" }

// MarkUsed marks key used until until, on every replica (SET NX with an
// expiry), and reports whether it was not used yet (first). until must be
// in the future.
func (r *Redis) MarkUsed(ctx context.Context, key string, until time.Time) (first bool, err error) {
	ttl := until.Sub(r.now())
	if ttl <= 0 {
		return false, errUntilPassed(until)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	first, err = r.client.SetNX(ctx, r.usedKey(key), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("sessionstore: redis: one-shot key: %w", err)
	}
	return first, nil
}

// UnmarkUsed forgets that key was used.
func (r *Redis) UnmarkUsed(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.client.Del(ctx, r.usedKey(key)).Err(); err != nil {
		return fmt.Errorf("sessionstore: redis: one-shot key: %w", err)
	}
	return nil
}

// MarkUsed marks key used until until on every replica; see Redis.MarkUsed.
// It is never cached: the answer must come from the shared store.
func (c *Cached) MarkUsed(ctx context.Context, key string, until time.Time) (bool, error) {
	return c.store.MarkUsed(ctx, key, until)
}

// UnmarkUsed forgets that key was used, on every replica.
func (c *Cached) UnmarkUsed(ctx context.Context, key string) error {
	return c.store.UnmarkUsed(ctx, key)
}
