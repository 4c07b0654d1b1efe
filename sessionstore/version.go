package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// MinRedisVersion is the oldest Redis the store supports. Every command and option it sends exists in it (no
// EXPIRE NX/GT, no 7.x-only commands); Valkey, which descends from Redis 7.2, is supported in every version.
const MinRedisVersion = "6.2.0"

var minVersion = [3]int{6, 2, 0}

// VersionError reports a server older than MinRedisVersion. Startup refuses such a server; readiness reports it.
type VersionError struct {
	// Addr is the node that answered, when known.
	Addr string
	// Server is "redis" or "valkey"; Version is what the server reported.
	Server, Version string
}

func (e *VersionError) Error() string {
	at := ""
	if e.Addr != "" {
		at = " at " + e.Addr
	}
	return fmt.Sprintf("sessionstore: %s%s is version %s; Gatehouse needs Redis %s or later, or Valkey", e.Server, at, e.Version, MinRedisVersion)
}

// Check asks the server (in cluster mode every node, in sentinel mode the current master) for its version and
// returns a *VersionError if one is older than MinRedisVersion. Any other error means Redis could not be asked. Call
// it at startup: an old server would otherwise fail at the first command it does not know.
func (r *Redis) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	check := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return fmt.Errorf("sessionstore: redis version check: %w", err)
		}
		if err := checkVersion(info); err != nil {
			var ve *VersionError
			if errors.As(err, &ve) {
				ve.Addr = c.Options().Addr
			}
			return err
		}
		return nil
	}
	var err error
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		var errs []error
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := check(ctx, n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
		if err == nil {
			err = errors.Join(errs...)
		}
	case *redis.Client:
		err = check(ctx, c)
	default:
		err = fmt.Errorf("sessionstore: redis version check: unexpected client %T", r.client)
	}
	if err != nil {
		return err
	}
	r.versionOK.Store(true)
	return nil
}

// checkVersion reads the INFO server section and refuses a Redis older than MinRedisVersion. Valkey also reports a
// redis_version (7.2.4, for clients that look at it), and any Valkey is recent enough.
func checkVersion(info string) error {
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			fields[k] = v
		}
	}
	if v := fields["valkey_version"]; v != "" || fields["server_name"] == "valkey" {
		return nil
	}
	v := fields["redis_version"]
	got, err := parseVersion(v)
	if err != nil {
		return fmt.Errorf("sessionstore: redis version check: INFO reports redis_version %q: %w", v, err)
	}
	for i := range got {
		if got[i] != minVersion[i] {
			if got[i] < minVersion[i] {
				return &VersionError{Server: "redis", Version: v}
			}
			return nil
		}
	}
	return nil
}

// parseVersion reads "major.minor.patch"; a missing patch counts as 0, and anything after a '-' (a pre-release
// label) is ignored.
func parseVersion(v string) ([3]int, error) {
	var out [3]int
	v, _, _ = strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	if v == "" || len(parts) < 2 || len(parts) > 3 {
		return out, errors.New("not a version number")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, errors.New("not a version number")
		}
		out[i] = n
	}
	return out, nil
}
