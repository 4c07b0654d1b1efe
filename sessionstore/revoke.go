package sessionstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sessions can be ended without their cookie: every session of a user
// ("sign out everywhere") or every session of one provider login (OpenID
// Connect Back-Channel Logout names the provider's sid). Redis keeps an
// index for that: a set per subject and per provider sid holding the store
// hashes of the sessions, keyed by a hash of the subject or sid (the index
// reveals neither), expiring with the longest session in it.

// indexKey returns the index key for kind ("u" subject, "p" provider sid).
func (r *Redis) indexKey(kind, value string) string {
	sum := sha256.Sum256([]byte("gatehouse-index\x00" + kind + "\x00" + value))
	return r.prefix + ":" + kind + ":{" + hex.EncodeToString(sum[:]) + "}"
}

// index records the session under its subject and provider sid. Called by
// Save; a failure only means revocation by subject or sid may miss it.
func (r *Redis) index(ctx context.Context, h string, s *Session, ttl time.Duration) error {
	var keys []string
	if s.Subject != "" {
		keys = append(keys, r.indexKey("u", s.Subject))
	}
	if s.ProviderSID != "" {
		keys = append(keys, r.indexKey("p", s.ProviderSID))
	}
	if len(keys) == 0 {
		return nil
	}
	// Each index key is its own Cluster slot: a plain pipeline, not MULTI.
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.SAdd(ctx, k, h)
			// The set lives as long as its longest-lived session: set an
			// expiry on a new set, and only ever lengthen it.
			p.ExpireNX(ctx, k, ttl+time.Second)
			p.ExpireGT(ctx, k, ttl+time.Second)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis index: %w", err)
	}
	return nil
}

// deleteIndexed deletes every session listed under an index key and the key
// itself, returning the store hashes it removed.
func (r *Redis) deleteIndexed(ctx context.Context, key string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	hashes, err := r.client.SMembers(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("sessionstore: redis revoke: %w", err)
	}
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, h := range hashes {
			p.Del(ctx, r.key(h))
		}
		p.Del(ctx, key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sessionstore: redis revoke: %w", err)
	}
	return hashes, nil
}

// DeleteBySubject ends every session of the user with this subject and
// returns how many there were.
func (r *Redis) DeleteBySubject(ctx context.Context, subject string) (int, error) {
	h, err := r.deleteIndexed(ctx, r.indexKey("u", subject))
	return len(h), err
}

// DeleteByProviderSID ends every session of one provider login (the sid of
// its ID token) and returns how many there were.
func (r *Redis) DeleteByProviderSID(ctx context.Context, sid string) (int, error) {
	h, err := r.deleteIndexed(ctx, r.indexKey("p", sid))
	return len(h), err
}

// DeleteBySubject ends the user's sessions and drops them on every replica.
func (c *Cached) DeleteBySubject(ctx context.Context, subject string) (int, error) {
	h, err := c.store.deleteIndexed(ctx, c.store.indexKey("u", subject))
	c.dropAll(ctx, h)
	return len(h), err
}

// DeleteByProviderSID ends one provider login's sessions on every replica.
func (c *Cached) DeleteByProviderSID(ctx context.Context, sid string) (int, error) {
	h, err := c.store.deleteIndexed(ctx, c.store.indexKey("p", sid))
	c.dropAll(ctx, h)
	return len(h), err
}

func (c *Cached) dropAll(ctx context.Context, hashes []string) {
	for _, h := range hashes {
		c.drop(h)
		pctx, cancel := context.WithTimeout(ctx, c.store.opTimeout)
		_ = c.store.client.Publish(pctx, c.channel, h).Err()
		cancel()
	}
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
	for _, e := range m.entries {
		if match(e.s) {
			m.removeLocked(e)
			n++
		}
	}
	return n
}
