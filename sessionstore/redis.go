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
)

// Hash fields of a session key.
const (
	fieldData     = "d" // the encrypted session record
	fieldSeen     = "s" // the encrypted LastSeen, written alone by Touch
	fieldVerifier = "v" // keyVerifier(Ticket.Key): lets Touch check the key without decrypting anything
)

// blobVersion prefixes every encrypted value so the format can change without misreading old data.
const blobVersion byte = 1

// touchScript sets LastSeen only if the session exists and was saved with the same key: a Touch must neither
// resurrect a deleted session as a stub nor let a wrong key overwrite the field.
var touchScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
	redis.call('HSET', KEYS[1], 's', ARGV[2])
	return 1
end
return 0
`)

// RedisConfig configures a Redis store. Only Addrs is required.
type RedisConfig struct {
	// Addrs lists host:port addresses: one for a standalone server, several for a Cluster, or the Sentinels when
	// MasterName is set.
	Addrs []string
	// MasterName, if set, selects Sentinel mode: Addrs are Sentinels and this names the monitored master.
	MasterName string
	// Username and Password authenticate to the data nodes (ACL user or requirepass); empty means none. Sentinels
	// are asked for the master without credentials.
	Username string
	Password string
	// DB selects the database of a standalone or Sentinel deployment; Cluster only has 0.
	DB int
	// TLSConfig, if not nil, makes every connection use TLS with this configuration.
	TLSConfig *tls.Config
	// KeyPrefix starts every key the store writes; empty means DefaultKeyPrefix. It must not contain '{' or '}',
	// which would change the Cluster hash slot of every session.
	KeyPrefix string
	// DialTimeout bounds establishing a connection; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// OpTimeout bounds every command, on top of the caller's context; zero means DefaultOpTimeout.
	OpTimeout time.Duration
	// PoolSize is the number of connections per node; zero means go-redis's default (10 per CPU).
	PoolSize int
	// Now returns the current time; nil means time.Now. Tests inject a clock here.
	Now func() time.Time
}

// Redis is a session store in Redis (standalone, Sentinel or Cluster), shared by every replica. Each session lives in
// one hash whose key is derived from a hash of the session id, encrypted with AES-256-GCM under the ticket's key,
// and expiring with the session. It is safe for concurrent use.
type Redis struct {
	client    redis.UniversalClient
	prefix    string
	opTimeout time.Duration
	now       func() time.Time
}

// NewRedis validates cfg and returns a Redis store. It does not contact Redis, so it succeeds while Redis is down and
// the store recovers by itself when Redis comes back; use Ping to report reachability.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	var problems []string
	if len(cfg.Addrs) == 0 {
		problems = append(problems, "addrs: at least one address is required")
	}
	for i, a := range cfg.Addrs {
		if strings.TrimSpace(a) == "" {
			problems = append(problems, fmt.Sprintf("addrs[%d]: empty address", i))
		}
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		problems = append(problems, fmt.Sprintf("key_prefix %q: must not contain '{' or '}'", cfg.KeyPrefix))
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
	if cfg.PoolSize < 0 {
		problems = append(problems, fmt.Sprintf("pool_size %d: must not be negative", cfg.PoolSize))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("sessionstore: invalid redis configuration: %s", strings.Join(problems, "; "))
	}

	r := &Redis{prefix: cfg.KeyPrefix, opTimeout: cfg.OpTimeout, now: cfg.Now}
	if r.prefix == "" {
		r.prefix = DefaultKeyPrefix
	}
	if r.opTimeout == 0 {
		r.opTimeout = DefaultOpTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout == 0 {
		dialTimeout = DefaultDialTimeout
	}
	r.client = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      cfg.Addrs,
		MasterName: cfg.MasterName,
		Username:   cfg.Username,
		Password:   cfg.Password,
		DB:         cfg.DB,
		TLSConfig:  cfg.TLSConfig,
		// DialTimeout is capped by the command's context, so an outage costs at most OpTimeout per call.
		DialTimeout:  dialTimeout,
		ReadTimeout:  r.opTimeout,
		WriteTimeout: r.opTimeout,
		// Without this go-redis ignores context deadlines for socket reads and writes.
		ContextTimeoutEnabled: true,
		PoolSize:              cfg.PoolSize,
		// Maintenance notifications are a Redis Enterprise/Cloud feature; probing for them costs a round trip per
		// new connection elsewhere.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return r, nil
}

// Save stores s under t, encrypted with t.Key, replacing any session with the same id, and sets the key to expire at
// s.ExpiresAt. A session already past its ExpiresAt is not kept: Save deletes any stored copy instead.
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
		if err := r.client.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("sessionstore: redis save: deleting expired session: %w", err)
		}
		return nil
	}

	data, seen, err := r.sealed(t, h, s)
	if err != nil {
		return err
	}
	verifier := keyVerifier(t.Key)

	// MULTI/EXEC: a reader never sees the new fields without the new expiry. All three fields are always written,
	// so nothing of a replaced session survives.
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fieldData, data, fieldSeen, seen, fieldVerifier, verifier[:])
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis save: %w", err)
	}
	return r.index(ctx, h, s, ttl)
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
	h := storeHash(t.ID)
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	vals, err := r.client.HMGet(ctx, r.key(h), fieldData, fieldSeen).Result()
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
	n, err := touchScript.Run(ctx, r.client, []string{r.key(h)}, verifier[:], blob).Int()
	if err != nil {
		return fmt.Errorf("sessionstore: redis touch: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Delete removes the session saved under t.ID, if any.
func (r *Redis) Delete(ctx context.Context, t Ticket) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.client.Del(ctx, r.key(storeHash(t.ID))).Err(); err != nil {
		return fmt.Errorf("sessionstore: redis delete: %w", err)
	}
	return nil
}

// Ping reports whether Redis answers within the operation timeout.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("sessionstore: redis ping: %w", err)
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
