package sessionstore

import (
	"container/heap"
	"context"
	"crypto/subtle"
	"errors"
	"sync"
	"time"
)

const (
	// DefaultMaxSessions is the Memory store's bound when MemoryConfig.MaxSessions is not set.
	DefaultMaxSessions = 100000

	// sweepInterval is how often Memory drops expired sessions. Expired sessions are never returned in between;
	// the sweep only gives their memory back.
	sweepInterval = time.Minute
	// sweepBatch bounds how many entries one sweep step removes while holding the lock, so a mass expiry does not
	// stall requests.
	sweepBatch = 1024
)

// MemoryConfig configures a Memory store. The zero value is ready to use.
type MemoryConfig struct {
	// MaxSessions bounds how many sessions are kept. When full, saving a new session evicts an expired one if there
	// is any, otherwise the least recently used. Zero or less means DefaultMaxSessions.
	MaxSessions int
	// Now returns the current time; nil means time.Now. Tests inject a clock here.
	Now func() time.Time
}

// Memory is an in-process session store for a single instance: sessions do not survive a restart and are not shared
// between replicas. It is bounded and safe for concurrent use. Close stops its background sweep.
type Memory struct {
	max int
	now func() time.Time

	mu       sync.Mutex
	entries  map[ID]*memEntry
	lru      memEntry   // sentinel of a circular list: lru.next is the most recently used
	byExpiry expiryHeap // soonest ExpiresAt first

	locks map[ID]time.Time // TryLock: held until
	once  ttlMap           // PutOnce / TakeOnce
	used  ttlMap           // MarkUsed / UnmarkUsed

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type memEntry struct {
	id  ID
	key [32]byte
	// s is never modified once stored, only replaced, so Load can clone it after releasing the lock.
	s          *Session
	prev, next *memEntry
	heapIndex  int
}

// NewMemory returns an empty Memory store and starts its periodic sweep of expired sessions.
func NewMemory(cfg MemoryConfig) *Memory { return newMemory(cfg, nil) }

// newMemory is NewMemory sweeping whenever tick fires; nil means every sweepInterval. Tests drive the sweep with
// their own channel.
func newMemory(cfg MemoryConfig, tick <-chan time.Time) *Memory {
	m := &Memory{
		max:     cfg.MaxSessions,
		now:     cfg.Now,
		entries: make(map[ID]*memEntry),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if m.max <= 0 {
		m.max = DefaultMaxSessions
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.lru.next, m.lru.prev = &m.lru, &m.lru
	go m.sweepLoop(tick)
	return m
}

// Save stores a copy of s under t, replacing any session with the same id. A session already past its ExpiresAt is
// not kept: Save removes any stored copy instead.
func (m *Memory) Save(_ context.Context, t Ticket, s *Session) error {
	if err := checkSavable(s); err != nil {
		return err
	}
	c := s.Clone()
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[t.ID]
	if !now.Before(c.ExpiresAt) {
		if e != nil {
			m.removeLocked(e)
		}
		return nil
	}
	if e != nil {
		e.key, e.s = t.Key, c
		heap.Fix(&m.byExpiry, e.heapIndex)
		m.moveToFrontLocked(e)
		return nil
	}
	if len(m.entries) >= m.max {
		m.evictOneLocked(now)
	}
	e = &memEntry{id: t.ID, key: t.Key, s: c}
	m.entries[t.ID] = e
	heap.Push(&m.byExpiry, e)
	m.pushFrontLocked(e)
	return nil
}

// Load returns a copy of the session saved under t, or ErrNotFound if there is none, it is past its ExpiresAt, or
// t.Key is not the key it was saved with.
func (m *Memory) Load(_ context.Context, t Ticket) (*Session, error) {
	m.mu.Lock()
	e, err := m.liveLocked(t)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.moveToFrontLocked(e)
	s := e.s
	m.mu.Unlock()
	return s.Clone(), nil
}

// Touch sets the LastSeen of the session saved under t to seen, leaving the rest as saved. It returns ErrNotFound
// under the same conditions as Load.
func (m *Memory) Touch(_ context.Context, t Ticket, seen time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.liveLocked(t)
	if err != nil {
		return err
	}
	// A shallow copy is enough: Groups and Claims of stored sessions are never modified.
	s := *e.s
	s.LastSeen = seen
	e.s = &s
	m.moveToFrontLocked(e)
	return nil
}

// Delete removes the session saved under t.ID, if any. The key is not checked: deleting is always allowed.
func (m *Memory) Delete(_ context.Context, t Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[t.ID]; e != nil {
		m.removeLocked(e)
	}
	return nil
}

// Ping always succeeds: memory is always reachable.
func (m *Memory) Ping(context.Context) error { return nil }

// Close stops the background sweep. It is idempotent. The store keeps answering afterwards; expired sessions are
// then reclaimed only when the store is full.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
	return nil
}

// liveLocked finds the entry for t, dropping it if it has expired.
func (m *Memory) liveLocked(t Ticket) (*memEntry, error) {
	e := m.entries[t.ID]
	if e == nil || subtle.ConstantTimeCompare(e.key[:], t.Key[:]) != 1 {
		return nil, ErrNotFound
	}
	if !m.now().Before(e.s.ExpiresAt) {
		m.removeLocked(e)
		return nil, ErrNotFound
	}
	return e, nil
}

func (m *Memory) evictOneLocked(now time.Time) {
	if len(m.byExpiry) > 0 && !now.Before(m.byExpiry[0].s.ExpiresAt) {
		m.removeLocked(m.byExpiry[0])
		return
	}
	if lru := m.lru.prev; lru != &m.lru {
		m.removeLocked(lru)
	}
}

func (m *Memory) sweepLoop(tick <-chan time.Time) {
	defer close(m.done)
	if tick == nil {
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-m.stop:
			return
		case <-tick:
			for m.sweepStep() {
			}
		}
	}
}

// sweepStep removes up to sweepBatch expired entries and reports whether more may remain.
func (m *Memory) sweepStep() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for range sweepBatch {
		if len(m.byExpiry) == 0 || now.Before(m.byExpiry[0].s.ExpiresAt) {
			return false
		}
		m.removeLocked(m.byExpiry[0])
	}
	return true
}

func (m *Memory) removeLocked(e *memEntry) {
	delete(m.entries, e.id)
	heap.Remove(&m.byExpiry, e.heapIndex)
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (m *Memory) pushFrontLocked(e *memEntry) {
	e.prev, e.next = &m.lru, m.lru.next
	m.lru.next.prev = e
	m.lru.next = e
}

func (m *Memory) moveToFrontLocked(e *memEntry) {
	if m.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	m.pushFrontLocked(e)
}

// checkSavable rejects sessions no store can keep meaningfully.
func checkSavable(s *Session) error {
	if s == nil {
		return errors.New("sessionstore: save: nil session")
	}
	if s.ExpiresAt.IsZero() {
		return errors.New("sessionstore: save: session has no ExpiresAt")
	}
	return nil
}

// expiryHeap orders entries by ExpiresAt so the next to expire is found in O(1) and removed in O(log n).
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].s.ExpiresAt.Before(h[j].s.ExpiresAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIndex = -1
	return e
}
