package proxy

import (
	"testing"

	"github.com/gatehouse/gatehouse/internal/testredis"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// BenchmarkServeHTTPRedis is BenchmarkServeHTTP with the session in a real
// redis-server: the same path plus one Redis round trip.
func BenchmarkServeHTTPRedis(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	store, err := sessionstore.NewRedis(sessionstore.RedisConfig{Addrs: []string{srv.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	benchServe(b, newFixture(b, store))
}

// BenchmarkServeHTTPRedisCached is the production setup: Redis behind the
// in-process cache with pub/sub invalidation (no Redis round trip on the
// steady path).
func BenchmarkServeHTTPRedisCached(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	store, err := sessionstore.NewRedis(sessionstore.RedisConfig{Addrs: []string{srv.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	cached := sessionstore.NewCached(store, sessionstore.CacheConfig{})
	b.Cleanup(func() { cached.Close() })
	benchServe(b, newFixture(b, cached))
}
