package sessionstore

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// redis62 lists every command the store may send and, for those whose
// options grew after 6.2, a check of the arguments. Anything else fails
// TestRedisCommandsExistIn62: the store must keep working on Redis 6.2.
var redis62 = map[string]func(args []any) error{
	"hello": nil, // RESP3 handshake, 6.0
	"hset":  nil, "hget": nil, "get": nil, "pttl": nil, "hmget": nil, "del": nil, "publish": nil, "ping": nil, "info": nil,
	"zrange": nil, "zrem": nil, "zremrangebyscore": nil, "zadd": nil, "zcard": nil,
	"watch": nil, "unwatch": nil, "multi": nil, "exec": nil,
	"evalsha": nil, "eval": nil, "script": nil,
	"subscribe": nil, "unsubscribe": nil,
	"pexpire": expire62, "expire": expire62,
	"set": set62,
}

// EXPIRE and PEXPIRE took NX, XX, GT and LT only in 7.0.
func expire62(args []any) error {
	if len(args) != 3 {
		return fmt.Errorf("options %v need Redis 7.0", args[3:])
	}
	return nil
}

// SET's NX, XX, PX, EX, KEEPTTL and GET all exist in 6.2.
func set62(args []any) error {
	for _, a := range args[3:] {
		switch strings.ToUpper(fmt.Sprint(a)) {
		case "NX", "XX", "PX", "EX", "KEEPTTL", "GET":
		default:
			if _, err := fmt.Sscan(fmt.Sprint(a), new(int64)); err != nil {
				return fmt.Errorf("option %v", a)
			}
		}
	}
	return nil
}

// commandRecorder is a go-redis hook that records every command sent.
type commandRecorder struct {
	mu   sync.Mutex
	cmds [][]any
}

func (h *commandRecorder) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *commandRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *commandRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.record(c)
		}
		return next(ctx, cmds)
	}
}

func (h *commandRecorder) record(c redis.Cmder) {
	h.mu.Lock()
	h.cmds = append(h.cmds, c.Args())
	h.mu.Unlock()
}

// scriptCalls finds the commands Lua scripts run.
var scriptCalls = regexp.MustCompile(`redis\.call\('([A-Za-z]+)'`)

// TestRedisCommandsExistIn62 runs the conformance suite, revocations and
// the cache while recording every command the store sends, including those
// inside its scripts, and checks each exists, with its options, in Redis
// 6.2: the minimum the README declares. (The test server is newer, so only
// this check can catch a 7.x-only option such as EXPIRE NX, which makes
// every login fail on Redis 6.)
func TestRedisCommandsExistIn62(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	rec := &commandRecorder{}
	testStore(t, harness{
		newStore: func(t *testing.T, now func() time.Time) store {
			r := newRedisStore(t, srv, now)
			r.client.AddHook(rec)
			c := NewCached(r, CacheConfig{Now: now})
			t.Cleanup(func() { c.Close() })
			return c
		},
		ttl: func(t *testing.T, s store, tk Ticket) time.Duration {
			ttl, err := raw.PTTL(context.Background(), s.(*Cached).store.key(storeHash(tk.ID))).Result()
			if err != nil {
				t.Fatal(err)
			}
			return ttl
		},
	})
	r := newRedisStore(t, srv, nil)
	r.client.AddHook(rec)
	if err := r.Check(context.Background()); err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	seen := map[string]bool{}
	for _, args := range rec.cmds {
		name := strings.ToLower(fmt.Sprint(args[0]))
		seen[name] = true
		check, ok := redis62[name]
		if !ok {
			t.Errorf("the store sends %s, which is not on the list of Redis 6.2 commands it may use", strings.ToUpper(name))
			continue
		}
		if check != nil {
			if err := check(args); err != nil {
				t.Errorf("%v: %v", args, err)
			}
		}
		if name == "eval" || name == "evalsha" {
			if name == "eval" {
				for _, m := range scriptCalls.FindAllStringSubmatch(fmt.Sprint(args[1]), -1) {
					if _, ok := redis62[strings.ToLower(m[1])]; !ok {
						t.Errorf("a script calls %s, which is not on the list of Redis 6.2 commands", m[1])
					}
				}
			}
		}
	}
	for _, src := range []string{indexScriptLua, replaceScriptLua, lockScriptLua, touchScriptLua} {
		for _, m := range scriptCalls.FindAllStringSubmatch(src, -1) {
			if _, ok := redis62[strings.ToLower(m[1])]; !ok {
				t.Errorf("a script calls %s, which is not on the list of Redis 6.2 commands", m[1])
			}
			if strings.EqualFold(m[1], "expire") || strings.EqualFold(m[1], "pexpire") {
				if strings.Contains(src, "'NX'") || strings.Contains(src, "'GT'") {
					t.Errorf("a script uses EXPIRE options of Redis 7.0")
				}
			}
		}
	}
	for _, want := range []string{"hset", "zadd", "evalsha", "publish", "info"} {
		if !seen[want] && !(want == "zadd" && seen["eval"]) {
			t.Errorf("the recorder never saw %s: is it recording?", strings.ToUpper(want))
		}
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		name string
		info string
		want string // substring of the error; empty means accepted
	}{
		{"redis 7.0", "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n", ""},
		{"redis 6.2.0", "redis_version:6.2.0\r\n", ""},
		{"redis 6.2.14", "redis_version:6.2.14\r\n", ""},
		{"redis 8", "redis_version:8.0.2\r\n", ""},
		{"redis 6.0", "redis_version:6.0.16\r\n", "redis is version 6.0.16; Gatehouse needs Redis 6.2.0 or later"},
		{"redis 5", "redis_version:5.0.14\r\n", "version 5.0.14"},
		{"redis 6.1.99", "redis_version:6.1.99\r\n", "version 6.1.99"},
		{"valkey", "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n", ""},
		{"valkey 7.2 without valkey_version", "redis_version:7.2.4\r\nserver_name:valkey\r\n", ""},
		{"pre-release", "redis_version:7.9.240-rc1\r\n", ""},
		{"garbage", "redis_version:banana\r\n", `redis_version "banana"`},
		{"missing", "# Server\r\nuptime:1\r\n", `redis_version ""`},
		{"negative", "redis_version:7.-1.0\r\n", "not a version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkVersion(tt.info)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkVersion: %v; want accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkVersion = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRedisCheck(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{Password: "pw"})
	r := newRedisStore(t, srv, nil)
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("Check against %s: %v", srv.Addr, err)
	}
	srv.Stop()
	if err := r.Check(context.Background()); err == nil {
		t.Error("Check with Redis down = nil; want an error")
	}
}
