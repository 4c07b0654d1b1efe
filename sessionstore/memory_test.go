package sessionstore

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func (m *Memory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

func TestMemoryBound(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{MaxSessions: 3, Now: clock.Now})
	t.Cleanup(func() { m.Close() })

	var tks []Ticket
	for range 3 {
		tk := mustTicket(t)
		tks = append(tks, tk)
		if err := m.Save(ctx, tk, fullSession(clock.Now())); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	// Use the oldest, so the second becomes the least recently used.
	if _, err := m.Load(ctx, tks[0]); err != nil {
		t.Fatalf("Load: %v", err)
	}
	extra := mustTicket(t)
	if err := m.Save(ctx, extra, fullSession(clock.Now())); err != nil {
		t.Fatalf("Save beyond the bound: %v", err)
	}
	if got := m.len(); got != 3 {
		t.Errorf("sessions kept = %d; want 3 (MaxSessions)", got)
	}
	if _, err := m.Load(ctx, tks[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of the least recently used session: err = %v; want ErrNotFound (evicted)", err)
	}
	for _, tk := range []Ticket{tks[0], tks[2], extra} {
		if _, err := m.Load(ctx, tk); err != nil {
			t.Errorf("Load of a recently used session: %v; want it kept", err)
		}
	}

	// Replacing an existing session never evicts another.
	if err := m.Save(ctx, extra, fullSession(clock.Now())); err != nil {
		t.Fatalf("replacing Save: %v", err)
	}
	if got := m.len(); got != 3 {
		t.Errorf("sessions kept after a replace = %d; want 3", got)
	}

	// Touch counts as use too.
	if err := m.Touch(ctx, tks[0], clock.Now()); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	// Order of use is now tks[2] (oldest), extra, tks[0].
	if err := m.Save(ctx, mustTicket(t), fullSession(clock.Now())); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, err := m.Load(ctx, tks[2]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of the least recently used session: err = %v; want ErrNotFound (evicted)", err)
	}
	if _, err := m.Load(ctx, tks[0]); err != nil {
		t.Errorf("Load of the touched session: %v; want it kept", err)
	}
}

func TestMemoryEvictsExpiredFirst(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{MaxSessions: 3, Now: clock.Now})
	t.Cleanup(func() { m.Close() })

	short, lru, mid := mustTicket(t), mustTicket(t), mustTicket(t)
	shortSess := fullSession(clock.Now())
	shortSess.ExpiresAt = clock.Now().Add(time.Minute)
	for _, tk := range []Ticket{lru, mid} {
		if err := m.Save(ctx, tk, fullSession(clock.Now())); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	if err := m.Save(ctx, short, shortSess); err != nil {
		t.Fatalf("Save: %v", err)
	}
	// short is the most recently used, lru the least; only short is about to expire.
	clock.Advance(2 * time.Minute)
	if err := m.Save(ctx, mustTicket(t), fullSession(clock.Now())); err != nil {
		t.Fatalf("Save beyond the bound: %v", err)
	}
	if got := m.len(); got != 3 {
		t.Errorf("sessions kept = %d; want 3", got)
	}
	for _, tk := range []Ticket{lru, mid} {
		if _, err := m.Load(ctx, tk); err != nil {
			t.Errorf("Load of a live session: %v; want it kept while an expired one could go", err)
		}
	}
}

func TestMemoryZeroConfig(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	if m.max != DefaultMaxSessions {
		t.Errorf("max = %d; want DefaultMaxSessions (%d)", m.max, DefaultMaxSessions)
	}
	tk := mustTicket(t)
	if err := m.Save(context.Background(), tk, &Session{ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, err := m.Load(context.Background(), tk); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v; want nil (idempotent)", err)
	}
}

// TestMemorySweep drives the sweep with its own tick channel and a fake clock. It runs in a synctest bubble, which
// only ends once every goroutine the store started has exited, so a sweeper that Close fails to stop hangs the test
// instead of leaking quietly.
func TestMemorySweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		clock := newFakeClock()
		tick := make(chan time.Time)
		m := newMemory(MemoryConfig{Now: clock.Now}, tick)
		short, long := mustTicket(t), mustTicket(t)
		if err := m.Save(ctx, short, &Session{ExpiresAt: clock.Now().Add(30 * time.Second)}); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := m.Save(ctx, long, &Session{ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("Save: %v", err)
		}

		clock.Advance(time.Minute)
		tick <- clock.Now()
		// The loop takes the second tick only once the first sweep is over.
		tick <- clock.Now()
		if got := m.len(); got != 1 {
			t.Errorf("sessions kept after a sweep = %d; want 1 (the expired one dropped without being asked for)", got)
		}
		if _, err := m.Load(ctx, long); err != nil {
			t.Errorf("Load of the live session after a sweep: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestMemorySweepBatches checks a mass expiry is swept completely, across several lock-releasing batches.
func TestMemorySweepBatches(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now})
	t.Cleanup(func() { m.Close() })
	n := 2*sweepBatch + 10
	for range n {
		if err := m.Save(ctx, mustTicket(t), &Session{ExpiresAt: clock.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	keep := mustTicket(t)
	if err := m.Save(ctx, keep, &Session{ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	clock.Advance(2 * time.Minute)
	steps := 0
	for m.sweepStep() {
		steps++
	}
	if steps < 2 {
		t.Errorf("sweep steps = %d; want the work split into batches of %d", steps, sweepBatch)
	}
	if got := m.len(); got != 1 {
		t.Errorf("sessions kept = %d; want 1", got)
	}
}

func BenchmarkMemoryLoad(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{})
	b.Cleanup(func() { m.Close() })
	tk := mustTicket(b)
	if err := m.Save(ctx, tk, fullSession(time.Now())); err != nil {
		b.Fatalf("Save: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Load(ctx, tk); err != nil {
			b.Fatalf("Load: %v", err)
		}
	}
}
