package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// keyUsage is MEMORY USAGE of each key one proxy wrote, smallest first.
type keyUsage []int64

// realKeyUsage reports MEMORY USAGE of every key in the benchmark's Redis,
// grouped into Gatehouse's (key_prefix "gatehouse") and oauth2-proxy's. At
// that point Redis holds only the sessions of the logins above.
func realKeyUsage(ctx context.Context, addr string) (map[string]keyUsage, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 3 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	out := map[string]keyUsage{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for n := 0; iter.Next(ctx) && n < 100000; n++ {
		k := iter.Val()
		b, err := c.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return nil, fmt.Errorf("loadbench: MEMORY USAGE: %w", err)
		}
		owner := "oauth2-proxy"
		if strings.HasPrefix(k, sessionstore.DefaultKeyPrefix) {
			owner = "gatehouse"
		}
		out[owner] = append(out[owner], b)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("loadbench: SCAN: %w", err)
	}
	for _, u := range out {
		slices.Sort(u)
	}
	return out, nil
}

// redisScale is the Redis store with many sessions.
type redisScale struct {
	Sessions        int     `json:"sessions"`
	BytesPerSession float64 `json:"used_memory_bytes_per_session"`
	KeyBytes        float64 `json:"memory_usage_bytes_per_key"`
	FillSeconds     float64 `json:"fill_seconds"`
	// Load latencies (one at a time, so a Redis round trip each) with few and with all sessions stored.
	SmallN      int     `json:"small_n"`
	SmallP50us  float64 `json:"small_load_p50_us"`
	SmallP99us  float64 `json:"small_load_p99_us"`
	LargeP50us  float64 `json:"large_load_p50_us"`
	LargeP99us  float64 `json:"large_load_p99_us"`
	SessionSize int     `json:"session_tokens_bytes"`
}

// measureRedisScale fills a fresh Redis with n copies of a realistic session
// through sessionstore.Redis, as Gatehouse saves them, and measures memory
// per session and Load latency with 1000 and with n sessions stored.
func measureRedisScale(ctx context.Context, addr string, n int, tmpl *sessionstore.Session) (redisScale, error) {
	rs := redisScale{Sessions: n, SmallN: min(1000, n),
		SessionSize: len(tmpl.IDToken) + len(tmpl.AccessToken) + len(tmpl.RefreshToken)}
	store, err := sessionstore.NewRedis(sessionstore.RedisConfig{Addrs: []string{addr}, OpTimeout: 5 * time.Second, PoolSize: 32})
	if err != nil {
		return rs, fmt.Errorf("loadbench: %w", err)
	}
	defer store.Close()
	raw := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 3 * time.Second, ReadTimeout: 5 * time.Second})
	defer raw.Close()
	before, err := usedMemory(ctx, raw)
	if err != nil {
		return rs, err
	}
	tickets := make([]sessionstore.Ticket, n)
	start := time.Now()
	if err := fill(ctx, store, tickets[:rs.SmallN], tmpl); err != nil {
		return rs, err
	}
	if rs.SmallP50us, rs.SmallP99us, err = loadLatency(ctx, store, tickets[:rs.SmallN]); err != nil {
		return rs, err
	}
	fillStart := time.Now()
	if err := fill(ctx, store, tickets[rs.SmallN:], tmpl); err != nil {
		return rs, err
	}
	rs.FillSeconds = time.Since(fillStart).Seconds() + fillStart.Sub(start).Seconds()
	after, err := usedMemory(ctx, raw)
	if err != nil {
		return rs, err
	}
	rs.BytesPerSession = float64(after-before) / float64(n)
	var keyBytes int64
	const sampled = 20
	for range sampled {
		k, err := raw.RandomKey(ctx).Result()
		if err != nil {
			return rs, fmt.Errorf("loadbench: RANDOMKEY: %w", err)
		}
		b, err := raw.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return rs, fmt.Errorf("loadbench: MEMORY USAGE: %w", err)
		}
		keyBytes += b
	}
	rs.KeyBytes = float64(keyBytes) / sampled
	if rs.LargeP50us, rs.LargeP99us, err = loadLatency(ctx, store, tickets); err != nil {
		return rs, err
	}
	return rs, nil
}

// fill saves a copy of tmpl under a fresh ticket for every slot, 16 at a time.
func fill(ctx context.Context, store *sessionstore.Redis, tickets []sessionstore.Ticket, tmpl *sessionstore.Session) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(tickets) {
					return
				}
				t, err := sessionstore.NewTicket()
				if err != nil {
					errs <- fmt.Errorf("loadbench: %w", err)
					return
				}
				if err := store.Save(ctx, t, tmpl); err != nil {
					errs <- fmt.Errorf("loadbench: saving session %d: %w", i, err)
					return
				}
				tickets[i] = t
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// loadLatency times 2000 Loads of random stored sessions, one at a time.
func loadLatency(ctx context.Context, store *sessionstore.Redis, tickets []sessionstore.Ticket) (p50, p99 float64, err error) {
	lat := make([]float64, 0, 2000)
	for range 2000 {
		t := tickets[rand.IntN(len(tickets))]
		start := time.Now()
		if _, err := store.Load(ctx, t); err != nil {
			return 0, 0, fmt.Errorf("loadbench: loading a stored session: %w", err)
		}
		lat = append(lat, float64(time.Since(start))/1e3)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("loadbench: INFO memory: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("loadbench: used_memory %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("loadbench: INFO memory has no used_memory")
}

func printScale(w io.Writer, real map[string]keyUsage, rs redisScale) {
	fmt.Fprintf(w, "\n### Redis memory\n\n")
	for _, k := range []string{"gatehouse", "oauth2-proxy"} {
		if u, ok := real[k]; ok {
			note := ""
			if len(u) > 1 && u[len(u)-1] > 4*u[0] {
				note = " (the large ones hold the 200-group user's sessions)"
			}
			fmt.Fprintf(w, "- %s: MEMORY USAGE of its %d keys after the benchmark's logins: %s B%s\n",
				k, len(u), strings.Trim(fmt.Sprint([]int64(u)), "[]"), note)
		}
	}
	if rs.Sessions == 0 {
		return
	}
	fmt.Fprintf(w, "- sessionstore.Redis with %d sessions (tokens %d B each session): %.0f B of used_memory per session, "+
		"MEMORY USAGE %.0f B per key; filled in %.1f s\n", rs.Sessions, rs.SessionSize, rs.BytesPerSession, rs.KeyBytes, rs.FillSeconds)
	fmt.Fprintf(w, "- Load, one at a time: p50 %.0f µs / p99 %.0f µs with %d sessions; p50 %.0f µs / p99 %.0f µs with %d\n",
		rs.SmallP50us, rs.SmallP99us, rs.SmallN, rs.LargeP50us, rs.LargeP99us, rs.Sessions)
}
