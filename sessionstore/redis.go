package sessionstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

const (
	// DefaultKeyPrefix is RedisConfig.KeyPrefix when it is not set.
	DefaultKeyPrefix = "gatehouse"
	// DefaultDialTimeout is RedisConfig.DialTimeout when it is not set.
	DefaultDialTimeout = 3 * time.Second
	// DefaultOpTimeout is RedisConfig.OpTimeout when it is not set.
	DefaultOpTimeout = time.Second
	// DefaultRevokeTimeout is RedisConfig.RevokeTimeout when it is not set.
	DefaultRevokeTimeout = 30 * time.Second
)

// Hash fields of a session key.
const (
	fieldData     = "d" // the encrypted session record
	fieldSeen     = "s" // the encrypted LastSeen, written alone by Touch
	fieldVerifier = "v" // keyVerifier(Ticket.Key): lets Touch check the key without decrypting anything
	fieldIndexes  = "x" // the session's revocation index keys, space-separated, so ending it can leave them
)

// blobVersion prefixes every encrypted value so the format can change without misreading old data.
const blobVersion byte = 1

// touchScript sets LastSeen only if the session exists and was saved with the same key: a Touch must neither
// resurrect a deleted session as a stub nor let a wrong key overwrite the field. It also sets the clear-text
// seconds that `gatehouse sessions list` shows (see meta.go).
//
// KEYS[1] session; ARGV[1] key verifier, ARGV[2] sealed LastSeen, ARGV[3] LastSeen in Unix seconds.
var touchScript = redis.NewScript(touchScriptLua)

const touchScriptLua = `
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
	redis.call('HSET', KEYS[1], 's', ARGV[2], 't', ARGV[3])
	return 1
end
return 0
`

// Deployment shapes of Redis, for RedisConfig.Mode.
const (
	// ModeStandalone is one server (or a managed endpoint that behaves as one).
	ModeStandalone = "standalone"
	// ModeSentinel asks Sentinels for the current master and follows failovers.
	ModeSentinel = "sentinel"
	// ModeCluster is a Redis Cluster reached through one or more seed nodes (a single configuration endpoint, as
	// managed services give, is enough).
	ModeCluster = "cluster"
)

// RedisConfig configures a Redis store. Only Addrs is required.
type RedisConfig struct {
	// Mode is ModeStandalone, ModeSentinel or ModeCluster; empty means ModeStandalone. It is never guessed from the
	// number of addresses: one address can be a whole Cluster.
	Mode string
	// Addrs lists host:port addresses: the server (standalone, exactly one), the Sentinels (sentinel), or seed nodes
	// (cluster).
	Addrs []string
	// MasterName names the master the Sentinels monitor; required in sentinel mode, refused otherwise.
	MasterName string
	// Username and Password authenticate to the data nodes (ACL user or requirepass); empty means none.
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels themselves (sentinel mode only); empty
	// means the Sentinels are asked without credentials.
	SentinelUsername string
	SentinelPassword string
	// DB selects the database of a standalone or Sentinel deployment; Cluster only has 0.
	DB int
	// TLSConfig, if not nil, makes every connection use TLS with this configuration: to the data nodes and, in
	// sentinel mode, to the Sentinels.
	TLSConfig *tls.Config
	// KeyPrefix starts every key the store writes; empty means DefaultKeyPrefix. It must not contain '{' or '}',
	// which would change the Cluster hash slot of every session, nor whitespace.
	KeyPrefix string
	// DialTimeout bounds establishing a connection; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// OpTimeout bounds every command, on top of the caller's context; zero means DefaultOpTimeout.
	OpTimeout time.Duration
	// RevokeTimeout bounds one revocation by subject or provider sid as a whole, which works through the index in
	// batches of OpTimeout each; zero means DefaultRevokeTimeout.
	RevokeTimeout time.Duration
	// PoolSize is the number of connections per node; zero means go-redis's default (10 per CPU).
	PoolSize int
	// Now returns the current time; nil means time.Now. Tests inject a clock here. Replicas sharing a Redis must
	// have clocks in sync (NTP) to well under a second: session expiry and the refresh lock are judged by it.
	Now func() time.Time
}

// Redis is a session store in Redis (standalone, Sentinel or Cluster), shared by every replica. Each session lives in
// one hash whose key is derived from a hash of the session id, encrypted with AES-256-GCM under the ticket's key,
// and expiring with the session. It is safe for concurrent use.
//
// It needs Redis 6.2 or later, or Valkey (MinRedisVersion); Check verifies that.
type Redis struct {
	client        redis.UniversalClient
	prefix        string
	opTimeout     time.Duration
	revokeTimeout time.Duration
	now           func() time.Time

	versionOK atomic.Bool // Check succeeded once

	// testHookRevokeBatch, if set, runs after a revocation read a batch of the index and before it deletes
	// anything: tests save a session there to race the revocation.
	testHookRevokeBatch func()
}

// NewRedis validates cfg and returns a Redis store. It does not contact Redis, so it succeeds while Redis is down and
// the store recovers by itself when Redis comes back; use Check at startup and Ping to report reachability.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	var problems []string
	mode := cfg.Mode
	if mode == "" {
		mode = ModeStandalone
	}
	if len(cfg.Addrs) == 0 {
		problems = append(problems, "addrs: at least one address is required")
	}
	for i, a := range cfg.Addrs {
		if strings.TrimSpace(a) == "" {
			problems = append(problems, fmt.Sprintf("addrs[%d]: empty address", i))
		}
	}
	switch mode {
	case ModeStandalone:
		if len(cfg.Addrs) > 1 {
			problems = append(problems, fmt.Sprintf("addrs: standalone mode takes one address, got %d (set mode to cluster or sentinel)", len(cfg.Addrs)))
		}
	case ModeSentinel:
		if cfg.MasterName == "" {
			problems = append(problems, "master_name: required in sentinel mode")
		}
	case ModeCluster:
		if cfg.DB != 0 {
			problems = append(problems, fmt.Sprintf("db %d: must be 0 in cluster mode", cfg.DB))
		}
	default:
		problems = append(problems, fmt.Sprintf("mode %q: must be standalone, sentinel or cluster", cfg.Mode))
	}
	if mode != ModeSentinel {
		if cfg.MasterName != "" {
			problems = append(problems, "master_name: only in sentinel mode")
		}
		if cfg.SentinelUsername != "" || cfg.SentinelPassword != "" {
			problems = append(problems, "sentinel_username, sentinel_password: only in sentinel mode")
		}
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{} \t\r\n") {
		problems = append(problems, fmt.Sprintf("key_prefix %q: must not contain '{', '}' or whitespace", cfg.KeyPrefix))
	}
	if cfg.DB < 0 {
		problems = append(problems, fmt.Sprintf("db %d: must not be negative", cfg.DB))
	}
	if cfg.DialTimeout < 0 {
		problems = append(problems, fmt.Sprintf("dial_timeout %v: must not be negative", cfg.DialTimeout))
	}
	if cfg.OpTimeout < 0 {
		problems = append(problems, fmt.Sprintf("op_timeout %v: must not be negative", cfg.OpTimeout))
	}
	if cfg.RevokeTimeout < 0 {
		problems = append(problems, fmt.Sprintf("revoke_timeout %v: must not be negative", cfg.RevokeTimeout))
	}
	if cfg.PoolSize < 0 {
		problems = append(problems, fmt.Sprintf("pool_size %d: must not be negative", cfg.PoolSize))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("sessionstore: invalid redis configuration: %s", strings.Join(problems, "; "))
	}

	r := &Redis{prefix: cfg.KeyPrefix, opTimeout: cfg.OpTimeout, revokeTimeout: cfg.RevokeTimeout, now: cfg.Now}
	if r.prefix == "" {
		r.prefix = DefaultKeyPrefix
	}
	if r.opTimeout == 0 {
		r.opTimeout = DefaultOpTimeout
	}
	if r.revokeTimeout == 0 {
		r.revokeTimeout = DefaultRevokeTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout == 0 {
		dialTimeout = DefaultDialTimeout
	}
	// Maintenance notifications are a Redis Enterprise/Cloud feature; probing for them costs a round trip per new
	// connection elsewhere.
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch mode {
	case ModeSentinel:
		r.client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.MasterName,
			SentinelAddrs:    cfg.Addrs,
			SentinelUsername: cfg.SentinelUsername,
			SentinelPassword: cfg.SentinelPassword,
			Username:         cfg.Username,
			Password:         cfg.Password,
			DB:               cfg.DB,
			TLSConfig:        cfg.TLSConfig,
			DialTimeout:      dialTimeout,
			ReadTimeout:      r.opTimeout,
			WriteTimeout:     r.opTimeout,
			// Without this go-redis ignores context deadlines for socket reads and writes.
			ContextTimeoutEnabled: true,
			PoolSize:              cfg.PoolSize,
			DisableIdentity:       true,
			// FailoverOptions has no MaintNotificationsConfig: go-redis does not probe for them in sentinel mode.
		})
	case ModeCluster:
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                    cfg.Addrs,
			Username:                 cfg.Username,
			Password:                 cfg.Password,
			TLSConfig:                cfg.TLSConfig,
			DialTimeout:              dialTimeout,
			ReadTimeout:              r.opTimeout,
			WriteTimeout:             r.opTimeout,
			ContextTimeoutEnabled:    true,
			PoolSize:                 cfg.PoolSize,
			MaintNotificationsConfig: maint,
			// CLIENT SETINFO is Redis 7.2: on older servers it only costs a failing round trip per connection.
			DisableIdentity: true,
			// The slot map is refreshed this often while commands flow (default 60s): it is also how the
			// invalidation subscription finds the new master after a failover, since nothing else tells it.
			ClusterStateReloadInterval: 5 * time.Second,
		})
		// go-redis reloads the slot map on MOVED, or once a minute: a master
		// that died leaves commands failing on its address until then, while
		// its replica has long taken over. A connection failure asks for a
		// reload at once (deduplicated, in the background).
		cc.AddHook(clusterReloadHook{cc})
		r.client = cc
	default:
		r.client = redis.NewClient(&redis.Options{
			Addr:      cfg.Addrs[0],
			Username:  cfg.Username,
			Password:  cfg.Password,
			DB:        cfg.DB,
			TLSConfig: cfg.TLSConfig,
			// DialTimeout is capped by the command's context, so an outage costs at most OpTimeout per call.
			DialTimeout:              dialTimeout,
			ReadTimeout:              r.opTimeout,
			WriteTimeout:             r.opTimeout,
			ContextTimeoutEnabled:    true,
			PoolSize:                 cfg.PoolSize,
			MaintNotificationsConfig: maint,
			// CLIENT SETINFO is Redis 7.2: on older servers it only costs a failing round trip per connection.
			DisableIdentity: true,
		})
	}
	return r, nil
}

// Save stores s under t, encrypted with t.Key, replacing any session with the same id, sets the key to expire at
// s.ExpiresAt, and lists it in the revocation indexes of its subject and provider sid. A session already past its
// ExpiresAt is not kept: Save deletes any stored copy instead.
//
// An error means the session is not stored: when the indexes cannot be written, Save deletes the session again
// rather than leave one that revocation by subject could not reach.
func (r *Redis) Save(ctx context.Context, t Ticket, s *Session) error {
	if err := checkSavable(s); err != nil {
		return err
	}
	h := storeHash(t.ID)
	key := r.key(h)
	ttl := s.ExpiresAt.Sub(r.now())

	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if ttl < time.Millisecond {
		if err := r.deleteSessions(ctx, []string{h}, ""); err != nil {
			return fmt.Errorf("sessionstore: redis save: deleting expired session: %w", err)
		}
		return nil
	}

	data, seen, err := r.sealed(t, h, s)
	if err != nil {
		return err
	}
	verifier := keyVerifier(t.Key)
	indexes := r.indexKeys(s)

	// MULTI/EXEC: a reader never sees the new fields without the new expiry. All fields are always written, so
	// nothing of a replaced session survives.
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fieldData, data, fieldSeen, seen, fieldVerifier, verifier[:], fieldIndexes, strings.Join(indexes, " "))
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis save: %w", err)
	}
	// The session is written before it is indexed: a revocation that reads the index meanwhile either finds it
	// (and deletes the session, which exists) or leaves the member it adds now in place.
	if err := r.index(ctx, h, s.ExpiresAt, indexes); err != nil {
		// A fresh context: ctx may be what ran out.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), r.opTimeout)
		defer dcancel()
		if derr := r.client.Del(dctx, key).Err(); derr != nil {
			return fmt.Errorf("%w (and the unindexed session could not be deleted: %w)", err, derr)
		}
		return err
	}
	return nil
}

// sealed encrypts the session record and its LastSeen for storage under h.
func (r *Redis) sealed(t Ticket, h string, s *Session) (data, seen []byte, err error) {
	plain, err := json.Marshal(toRecord(s))
	if err != nil {
		return nil, nil, fmt.Errorf("sessionstore: redis: encoding session: %w", err)
	}
	if data, err = seal(t.Key, aad(fieldData, h), plain); err != nil {
		return nil, nil, err
	}
	seenBytes, err := s.LastSeen.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("sessionstore: redis: encoding LastSeen: %w", err)
	}
	if seen, err = seal(t.Key, aad(fieldSeen, h), seenBytes); err != nil {
		return nil, nil, err
	}
	return data, seen, nil
}

// Load returns the session saved under t, or ErrNotFound if there is none, it is past its ExpiresAt, or it does not
// decrypt with t.Key. Any other error means Redis could not be asked.
func (r *Redis) Load(ctx context.Context, t Ticket) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	return r.read(ctx, r.client, t)
}

// read is Load on c, which may be a transaction watching the session's key.
func (r *Redis) read(ctx context.Context, c redis.Cmdable, t Ticket) (*Session, error) {
	h := storeHash(t.ID)
	vals, err := c.HMGet(ctx, r.key(h), fieldData, fieldSeen).Result()
	if err != nil {
		return nil, fmt.Errorf("sessionstore: redis load: %w", err)
	}
	data, ok := vals[0].(string)
	if !ok {
		return nil, ErrNotFound
	}
	plain, err := open(t.Key, aad(fieldData, h), data)
	if err != nil {
		return nil, ErrNotFound
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		// Authenticated yet unreadable: written by an incompatible version. The user signs in again.
		return nil, fmt.Errorf("%w: decoding stored session: %w", ErrNotFound, err)
	}
	s := rec.session()
	if seen, ok := vals[1].(string); ok {
		b, err := open(t.Key, aad(fieldSeen, h), seen)
		if err != nil {
			return nil, ErrNotFound
		}
		if err := s.LastSeen.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("%w: decoding stored LastSeen: %w", ErrNotFound, err)
		}
	}
	if !r.now().Before(s.ExpiresAt) {
		return nil, ErrNotFound
	}
	return s, nil
}

// Touch sets the LastSeen of the session saved under t to seen, writing only that field. It returns ErrNotFound if
// the session is gone or was saved with another key.
func (r *Redis) Touch(ctx context.Context, t Ticket, seen time.Time) error {
	h := storeHash(t.ID)
	b, err := seen.MarshalBinary()
	if err != nil {
		return fmt.Errorf("sessionstore: redis touch: encoding LastSeen: %w", err)
	}
	blob, err := seal(t.Key, aad(fieldSeen, h), b)
	if err != nil {
		return err
	}
	verifier := keyVerifier(t.Key)

	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	n, err := touchScript.Run(ctx, r.client, []string{r.key(h)}, verifier[:], blob, seen.Unix()).Int()
	if err != nil {
		return fmt.Errorf("sessionstore: redis touch: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Delete removes the session saved under t.ID, if any, and its entries in the revocation indexes.
func (r *Redis) Delete(ctx context.Context, t Ticket) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.deleteSessions(ctx, []string{storeHash(t.ID)}, ""); err != nil {
		return fmt.Errorf("sessionstore: redis delete: %w", err)
	}
	return nil
}

// Ping reports whether Redis answers within the operation timeout. Until Check has succeeded once, it runs Check
// too, so a Redis that was down at startup and turns out too old shows as not ready.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("sessionstore: redis ping: %w", err)
	}
	if !r.versionOK.Load() {
		return r.Check(ctx)
	}
	return nil
}

// Close closes the connections to Redis.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("sessionstore: redis close: %w", err)
	}
	return nil
}

// clusterReloadHook reloads a Cluster's slot map when a command fails for a
// reason other than Redis's answer: the node it went to is gone.
type clusterReloadHook struct{ c *redis.ClusterClient }

func (h clusterReloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h clusterReloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h clusterReloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.check(c.Err())
		}
		return err
	}
}

func (h clusterReloadHook) check(err error) {
	var answer redis.Error // an error Redis answered with (redis.Nil included)
	if err != nil && !errors.As(err, &answer) && !errors.Is(err, context.Canceled) {
		h.c.ReloadState(context.Background())
	}
}

// storeHash is the hex SHA-256 of the id under a label of its own, so store keys reveal neither the id nor the SID.
func storeHash(id ID) string {
	h := sha256.New()
	h.Write([]byte("gatehouse-store\x00"))
	h.Write(id[:])
	return hex.EncodeToString(h.Sum(nil))
}

// key is the session's hash key. The {hash tag} puts every key of one session on the same Cluster slot.
func (r *Redis) key(storeHash string) string {
	return r.prefix + ":s:{" + storeHash + "}"
}

// aad binds a ciphertext to its field and session, so blobs cannot be swapped between fields or sessions.
func aad(field, storeHash string) []byte {
	return []byte("gatehouse-session\x00" + field + "\x00" + storeHash)
}

// keyVerifier is a one-way digest of the session key that Touch's script compares; it reveals nothing usable about
// the key.
func keyVerifier(key [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("gatehouse-key-verifier\x00"))
	h.Write(key[:])
	var v [32]byte
	h.Sum(v[:0])
	return v
}

// seal encrypts plain with AES-256-GCM under key: version byte || nonce || ciphertext+tag.
func seal(key [32]byte, aad, plain []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+gcm.NonceSize(), 1+gcm.NonceSize()+len(plain)+gcm.Overhead())
	out[0] = blobVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("sessionstore: generating nonce: %w", err)
	}
	return gcm.Seal(out, out[1:], plain, aad), nil
}

var errUndecryptable = errors.New("sessionstore: undecryptable value")

// open reverses seal.
func open(key [32]byte, aad []byte, blob string) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(blob) < 1+gcm.NonceSize()+gcm.Overhead() || blob[0] != blobVersion {
		return nil, errUndecryptable
	}
	b := []byte(blob)
	nonce, ct := b[1:1+gcm.NonceSize()], b[1+gcm.NonceSize():]
	plain, err := gcm.Open(ct[:0], nonce, ct, aad)
	if err != nil {
		return nil, errUndecryptable
	}
	return plain, nil
}

func newGCM(key [32]byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("sessionstore: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sessionstore: gcm: %w", err)
	}
	return gcm, nil
}

// record is the stored form of a Session. Its JSON names are part of the storage format: sessions written by one
// release are read by the next, so rename nothing.
type record struct {
	Subject           string         `json:"sub,omitempty"`
	Email             string         `json:"email,omitempty"`
	EmailVerified     bool           `json:"email_verified,omitempty"`
	Name              string         `json:"name,omitempty"`
	PreferredUsername string         `json:"preferred_username,omitempty"`
	Groups            []string       `json:"groups,omitempty"`
	Claims            map[string]any `json:"claims,omitempty"`
	ProviderSID       string         `json:"provider_sid,omitempty"`
	IDToken           string         `json:"id_token,omitempty"`
	AccessToken       string         `json:"access_token,omitempty"`
	RefreshToken      string         `json:"refresh_token,omitempty"`
	TokenExpiry       time.Time      `json:"token_expiry"`
	AuthTime          time.Time      `json:"auth_time"`
	CreatedAt         time.Time      `json:"created_at"`
	ExpiresAt         time.Time      `json:"expires_at"`
	Version           uint64         `json:"version,omitempty"`
}

// toRecord leaves out LastSeen, which lives in its own field.
func toRecord(s *Session) record {
	return record{
		Subject: s.Subject, Email: s.Email, EmailVerified: s.EmailVerified, Name: s.Name,
		PreferredUsername: s.PreferredUsername, Groups: s.Groups, Claims: s.Claims, ProviderSID: s.ProviderSID,
		IDToken: s.IDToken, AccessToken: s.AccessToken, RefreshToken: s.RefreshToken,
		TokenExpiry: s.TokenExpiry, AuthTime: s.AuthTime, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt,
		Version: s.Version,
	}
}

func (rec *record) session() *Session {
	return &Session{
		Subject: rec.Subject, Email: rec.Email, EmailVerified: rec.EmailVerified, Name: rec.Name,
		PreferredUsername: rec.PreferredUsername, Groups: rec.Groups, Claims: rec.Claims, ProviderSID: rec.ProviderSID,
		IDToken: rec.IDToken, AccessToken: rec.AccessToken, RefreshToken: rec.RefreshToken,
		TokenExpiry: rec.TokenExpiry, AuthTime: rec.AuthTime, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt,
		Version: rec.Version,
	}
}
