package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// Token lengths of a session from the benchmark's provider (devidp, RS256,
// openid email profile offline_access): what loadbench measured for alice.
const (
	idTokenLen      = 1000
	accessTokenLen  = 900
	refreshTokenLen = 270
)

// session returns a session shaped like one after a real login, with token
// strings of its own: sessions never share token memory in production, so
// sharing them here would understate the store's size.
func session(i int, seed []byte, now time.Time) *sessionstore.Session {
	tok := func(n int) string {
		b := make([]byte, n)
		copy(b, seed[:n])
		copy(b, strconv.Itoa(i)) // distinct content, distinct allocation
		return string(b)
	}
	return &sessionstore.Session{
		Subject: "u-" + strconv.Itoa(i), Email: "user" + strconv.Itoa(i) + "@example.com", EmailVerified: true,
		Name: "User " + strconv.Itoa(i), PreferredUsername: "user" + strconv.Itoa(i),
		Groups:  []string{"admins", "developers"},
		IDToken: tok(idTokenLen), AccessToken: tok(accessTokenLen), RefreshToken: tok(refreshTokenLen),
		TokenExpiry: now.Add(time.Hour), AuthTime: now, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(12 * time.Hour), Version: 1,
	}
}

func seed(tb testing.TB) []byte {
	raw := make([]byte, idTokenLen)
	if _, err := crand.Read(raw); err != nil {
		tb.Fatal(err)
	}
	return []byte(base64.RawURLEncoding.EncodeToString(raw))
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rssKB reads this process's resident set size.
func rssKB(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// memFigures is the memory a filled store takes.
type memFigures struct {
	heapPerSession float64 // live heap bytes per stored session
	rssMB          float64 // the process's RSS with the store filled
}

func (f memFigures) report(b *testing.B) {
	b.ReportMetric(f.heapPerSession, "heap-B/session")
	b.ReportMetric(f.rssMB, "rss-MB")
}

// filledMemory returns a Memory store holding n sessions, their tickets, and
// the memory it takes. The caller closes the store.
func filledMemory(b *testing.B, n int) (*sessionstore.Memory, []sessionstore.Ticket, memFigures) {
	b.Helper()
	ctx := context.Background()
	sd := seed(b)
	now := time.Now()
	tickets := make([]sessionstore.Ticket, n)
	heapBefore := heapInUse()
	m := sessionstore.NewMemory(sessionstore.MemoryConfig{MaxSessions: n})
	for i := range tickets {
		t, err := sessionstore.NewTicket()
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Save(ctx, t, session(i, sd, now)); err != nil {
			b.Fatal(err)
		}
		tickets[i] = t
	}
	heapAfter := heapInUse()
	return m, tickets, memFigures{
		heapPerSession: float64(int64(heapAfter)-int64(heapBefore)) / float64(n),
		rssMB:          float64(rssKB(b)) / 1024,
	}
}

// BenchmarkMemoryStoreLoad is the cost of finding a session in the memory
// store with 1k and 100k sessions stored (issue 5's scale figure), from one
// goroutine and from all at once, with the store's memory: live heap per
// session and the process's RSS with the store full. Each store is filled
// once and shared by its two sub-benchmarks; metrics are reported after the
// timed loop because resetting the timer drops them.
func BenchmarkMemoryStoreLoad(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 100_000} {
		m, tickets, mem := filledMemory(b, n)
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Load(ctx, tickets[r.IntN(n)]); err != nil {
					b.Fatal(err)
				}
			}
			mem.report(b)
		})
		b.Run(fmt.Sprintf("sessions=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 3))
				for pb.Next() {
					if _, err := m.Load(ctx, tickets[r.IntN(n)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			mem.report(b)
		})
		m.Close()
	}
}
