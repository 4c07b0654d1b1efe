package sessionstore

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// ttlMap is the Memory store's short-lived, bounded map: its one-time values
// (PutOnce) and its used one-shot keys (MarkUsed). Keys are hashed with a
// kind, as the Redis store hashes them, so a key never sits in memory as
// given. When full, expired entries are swept; if none has expired, a new
// entry is refused (never an old one forgotten early: a forgotten used key
// would let a replay through). The zero value is ready.
type ttlMap struct {
	mu sync.Mutex
	m  map[string]ttlEntry
}

type ttlEntry struct {
	value []byte
	exp   time.Time
}

// keyHash hashes a caller's key for storage, kind keeping kinds apart.
func keyHash(kind, key string) string {
	sum := sha256.Sum256([]byte("gatehouse-" + kind + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// put stores value under h until exp. With ifAbsent it stores only when h
// holds nothing live, and reports whether it stored. It fails with full
// when max live entries are held already.
func (t *ttlMap) put(now time.Time, h string, value []byte, exp time.Time, ifAbsent bool, max int, full error) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]ttlEntry)
	}
	if e, ok := t.m[h]; ok && ifAbsent && now.Before(e.exp) {
		return false, nil
	}
	if len(t.m) >= max {
		for k, e := range t.m {
			if !now.Before(e.exp) {
				delete(t.m, k)
			}
		}
		if len(t.m) >= max {
			return false, full
		}
	}
	t.m[h] = ttlEntry{value, exp}
	return true, nil
}

// take removes h and returns its value if it was live.
func (t *ttlMap) take(now time.Time, h string) ([]byte, bool) {
	t.mu.Lock()
	e, ok := t.m[h]
	delete(t.m, h)
	t.mu.Unlock()
	return e.value, ok && now.Before(e.exp)
}
