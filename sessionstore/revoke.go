package sessionstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sessions can be ended without their cookie: every session of a user
// ("sign out everywhere") or every session of one provider login (OpenID
// Connect Back-Channel Logout names the provider's sid). Redis keeps an
// index for that: a sorted set per subject and per provider sid holding the
// store hashes of the sessions scored by their ExpiresAt (Unix ms), keyed by
// a hash of the subject or sid (the index reveals neither).
//
// The indexes stay bounded: every write trims the members whose session has
// expired, a session that ends (Delete, an idle check, a revocation) leaves
// its indexes, and an index expires with its longest-lived session. A
// revocation works through the index in batches and removes only the
// members it read, so a session saved meanwhile is either revoked or stays
// indexed.

// revokeBatch is how many sessions one revocation step reads and deletes.
const revokeBatch = 256

// indexScript adds a member scored by its session's expiry, drops the
// members whose session has expired, and lets the set live exactly as long
// as its longest-lived session (plus a second). It uses only what Redis 6.2
// has: no EXPIRE NX/GT.
//
// KEYS[1] index; ARGV[1] score (ExpiresAt, Unix ms), ARGV[2] member,
// ARGV[3] now (Unix ms).
var indexScript = redis.NewScript(indexScriptLua)

const indexScriptLua = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == nil then
	return 0
end
local ttl = tonumber(top[2]) - tonumber(ARGV[3])
if ttl < 1 then ttl = 1 end
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return 1
`

// indexKey returns the index key for kind ("u" subject, "p" provider sid).
func (r *Redis) indexKey(kind, value string) string {
	sum := sha256.Sum256([]byte("gatehouse-index\x00" + kind + "\x00" + value))
	return r.prefix + ":" + kind + ":{" + hex.EncodeToString(sum[:]) + "}"
}

// indexKeys returns the index keys a session belongs in.
func (r *Redis) indexKeys(s *Session) []string {
	var keys []string
	if s.Subject != "" {
		keys = append(keys, r.indexKey("u", s.Subject))
	}
	if s.ProviderSID != "" {
		keys = append(keys, r.indexKey("p", s.ProviderSID))
	}
	return keys
}

// index lists the session h, expiring at exp, under keys.
func (r *Redis) index(ctx context.Context, h string, exp time.Time, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	score, now := exp.UnixMilli(), r.now().UnixMilli()
	// Each index key is its own Cluster slot: a plain pipeline, not MULTI. EVAL with the (short) source rather
	// than EVALSHA: a pipeline cannot fall back when a node has not cached the script yet.
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			indexScript.Eval(ctx, p, []string{k}, score, h, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis index: %w", err)
	}
	return nil
}

// deleteSessions deletes the sessions with these store hashes and removes
// them from their indexes (except skip, which the caller trims itself).
// In a Cluster each session is its own slot; the pipeline sends every
// command to its node.
func (r *Redis) deleteSessions(ctx context.Context, hashes []string, skip string) error {
	_, err := r.deleteAndUnindex(ctx, hashes, skip)
	return err
}

// deleteAndUnindex is deleteSessions reporting which sessions existed.
func (r *Redis) deleteAndUnindex(ctx context.Context, hashes []string, skip string) ([]string, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	type pair struct {
		idx *redis.StringCmd
		del *redis.IntCmd
	}
	cmds := make([]pair, len(hashes))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			// Same key, same connection, in order: the index list is read before the hash goes.
			cmds[i] = pair{p.HGet(ctx, r.key(h), fieldIndexes), p.Del(ctx, r.key(h))}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for _, c := range cmds {
		if err := c.del.Err(); err != nil {
			return nil, err
		}
		if err := c.idx.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
	}
	var deleted []string
	unindex := map[string][]any{}
	for i, c := range cmds {
		if c.del.Val() == 1 {
			deleted = append(deleted, hashes[i])
		}
		for _, k := range strings.Fields(c.idx.Val()) {
			if k != skip {
				unindex[k] = append(unindex[k], hashes[i])
			}
		}
	}
	if len(unindex) > 0 {
		if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for k, members := range unindex {
				p.ZRem(ctx, k, members...)
			}
			return nil
		}); err != nil {
			// The sessions are gone; a stale member only costs a no-op delete later and leaves with its score.
			return deleted, fmt.Errorf("sessionstore: redis: removing ended sessions from their indexes: %w", err)
		}
	}
	return deleted, nil
}

// revokeIndexed deletes every session listed under an index key, in
// batches, removing from the index only the members it read. It calls
// ended with each batch of store hashes whose session it deleted, and
// returns how many sessions it ended. The whole revocation is bounded by
// the store's RevokeTimeout, each step by its OpTimeout.
func (r *Redis) revokeIndexed(ctx context.Context, key string, ended func([]string)) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.revokeTimeout)
	defer cancel()
	n := 0
	for {
		step, stepCancel := context.WithTimeout(ctx, r.opTimeout)
		members, err := r.client.ZRange(step, key, 0, revokeBatch-1).Result()
		if err != nil {
			stepCancel()
			return n, fmt.Errorf("sessionstore: redis revoke: reading the index: %w", err)
		}
		if len(members) == 0 {
			stepCancel()
			return n, nil
		}
		if r.testHookRevokeBatch != nil {
			r.testHookRevokeBatch()
		}
		deleted, err := r.deleteAndUnindex(step, members, key)
		n += len(deleted)
		if len(deleted) > 0 && ended != nil {
			ended(deleted)
		}
		if err == nil {
			rm := make([]any, len(members))
			for i, m := range members {
				rm[i] = m
			}
			// Only the members read: one added meanwhile stays for the next step or the next revocation.
			err = r.client.ZRem(step, key, rm...).Err()
		}
		stepCancel()
		if err != nil {
			return n, fmt.Errorf("sessionstore: redis revoke: %w", err)
		}
		if len(members) < revokeBatch {
			return n, nil
		}
	}
}

// DeleteBySubject ends every session of the user with this subject and
// returns how many there were.
func (r *Redis) DeleteBySubject(ctx context.Context, subject string) (int, error) {
	return r.revokeIndexed(ctx, r.indexKey("u", subject), nil)
}

// DeleteByProviderSID ends every session of one provider login (the sid of
// its ID token) and returns how many there were.
func (r *Redis) DeleteByProviderSID(ctx context.Context, sid string) (int, error) {
	return r.revokeIndexed(ctx, r.indexKey("p", sid), nil)
}

// DeleteBySubject ends the user's sessions and drops them on every replica.
func (c *Cached) DeleteBySubject(ctx context.Context, subject string) (int, error) {
	return c.store.revokeIndexed(ctx, c.store.indexKey("u", subject), func(h []string) { c.invalidate(ctx, h...) })
}

// DeleteByProviderSID ends one provider login's sessions on every replica.
func (c *Cached) DeleteByProviderSID(ctx context.Context, sid string) (int, error) {
	return c.store.revokeIndexed(ctx, c.store.indexKey("p", sid), func(h []string) { c.invalidate(ctx, h...) })
}

// DeleteBySubject ends every session of the user with this subject.
func (m *Memory) DeleteBySubject(_ context.Context, subject string) (int, error) {
	return m.deleteWhere(func(s *Session) bool { return s.Subject == subject }), nil
}

// DeleteByProviderSID ends every session of one provider login.
func (m *Memory) DeleteByProviderSID(_ context.Context, sid string) (int, error) {
	return m.deleteWhere(func(s *Session) bool { return sid != "" && s.ProviderSID == sid }), nil
}

func (m *Memory) deleteWhere(match func(*Session) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	now := m.now()
	for _, e := range m.entries {
		if match(e.s) {
			if now.Before(e.s.ExpiresAt) {
				n++
			}
			m.removeLocked(e)
		}
	}
	return n
}
