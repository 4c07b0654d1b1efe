package sessionstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/hkdf"
)

// An operator ends sessions without their cookies (`gatehouse sessions`):
// every session of a user, of an email address, or one session named by its
// public sid. To list them it needs to know something about each session,
// yet the session itself is sealed under the key only the cookie carries.
//
// So at login the proxy also writes a small metadata record (Meta) into the
// session's own Redis hash (field m), sealed under a server-held key derived
// from the cookie secrets: every replica and the command line have it, a
// copy of Redis alone does not. Living in the session's hash, the record
// ends with the session and needs no trimming of its own. Around it:
//
//   - <prefix>:i:{sid} maps the public sid to the session's store hash, so
//     an operator can name one session; it expires with the session;
//   - <prefix>:e:{tag} is a revocation index like the per-user one, keyed by
//     an HMAC of the lower-cased email under the server-held key (so Redis
//     holds no email, not even one a dictionary could find by hashing), and
//     listed in the session's field x so that ending the session leaves it;
//   - field t of the session's hash is the time of the last recorded
//     activity, Unix seconds in the clear, written by Touch with the sealed
//     LastSeen: shown by `sessions list`, never used to judge idleness.
//     It reveals no more than the key's own OBJECT IDLETIME.

// Hash fields of a session key written for operators.
const (
	fieldMeta     = "m" // the sealed Meta
	fieldSeenUnix = "t" // LastSeen, Unix seconds, for listing only
)

// HKDF info strings: the metadata keys are independent of the cookie keys derived from the same secret.
const (
	metaKeyInfo = "gatehouse session metadata aes-256 v1"
	metaTagInfo = "gatehouse session metadata email-index hmac-sha256 v1"
)

// Clients, for Meta.Client.
const (
	// ClientBrowser is a session a browser signed in to through the login flow.
	ClientBrowser = "browser"
	// ClientBearer is a session held by a client that presents bearer tokens.
	ClientBearer = "bearer"
)

// maxMetaField bounds each text field of a Meta, so a record stays small whatever the provider sends.
const maxMetaField = 256

// Meta is what an operator sees of a session without its cookie. It holds no
// token, no session id and no key; the raw User-Agent and IP address are
// summarized before they are kept.
type Meta struct {
	// SID is the session's public sid (the minted tokens' sid claim, the
	// logs' sid field).
	SID     string `json:"sid"`
	Subject string `json:"sub,omitempty"`
	Email   string `json:"email,omitempty"`
	// Client is ClientBrowser or ClientBearer.
	Client string `json:"client,omitempty"`
	// Device summarizes the User-Agent, such as "Firefox on Linux"; see
	// DeviceOf.
	Device string `json:"device,omitempty"`
	// Network is the client's /24 (IPv4) or /48 (IPv6); see NetworkOf.
	Network   string    `json:"network,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NewMeta describes the session s saved under t, signed in by client from
// addr with userAgent. Only summaries of userAgent and addr are kept.
func NewMeta(t Ticket, s *Session, client, userAgent string, addr netip.Addr) Meta {
	return Meta{
		SID:       t.SID(),
		Subject:   truncateMeta(s.Subject),
		Email:     truncateMeta(s.Email),
		Client:    client,
		Device:    DeviceOf(userAgent),
		Network:   NetworkOf(addr),
		CreatedAt: s.CreatedAt,
		ExpiresAt: s.ExpiresAt,
	}
}

func truncateMeta(s string) string {
	if len(s) > maxMetaField {
		return s[:maxMetaField]
	}
	return s
}

// NetworkOf returns the network addr belongs to, as an operator can judge
// it without holding a user's exact address: the /24 of an IPv4 address,
// the /48 of an IPv6 one (an IPv4-mapped address counts as IPv4), "" for
// an invalid one.
func NetworkOf(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// Browser and system names DeviceOf reports, matched in this order: the
// first whose token the User-Agent contains wins (Edge and Opera also claim
// Chrome; Chrome also claims Safari; Android also claims Linux).
var (
	uaBrowsers = []struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
		{"Safari/", "Safari"},
		{"curl/", "curl"}, {"Wget/", "Wget"}, {"okhttp/", "OkHttp"},
		{"python-requests/", "Python requests"}, {"Go-http-client/", "Go"},
	}
	uaSystems = []struct{ token, name string }{
		{"Windows", "Windows"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"},
		{"Android", "Android"}, {"CrOS", "ChromeOS"}, {"Macintosh", "macOS"},
		{"Mac OS X", "macOS"}, {"Linux", "Linux"}, {"FreeBSD", "FreeBSD"},
	}
)

// maxUALen bounds how much of a User-Agent DeviceOf reads: real ones are a
// few hundred bytes.
const maxUALen = 1024

// DeviceOf summarizes a User-Agent as "<browser> on <system>", such as
// "Firefox on Linux", from a fixed vocabulary: never the client's own text,
// which is untrusted and would otherwise end up on an operator's terminal.
// A browser or system it does not know is "unknown browser" / "unknown
// system"; an empty User-Agent is "".
func DeviceOf(userAgent string) string {
	if userAgent == "" {
		return ""
	}
	if len(userAgent) > maxUALen {
		userAgent = userAgent[:maxUALen]
	}
	browser, system := "unknown browser", "unknown system"
	for _, b := range uaBrowsers {
		if strings.Contains(userAgent, b.token) {
			browser = b.name
			break
		}
	}
	for _, s := range uaSystems {
		if strings.Contains(userAgent, s.token) {
			system = s.name
			break
		}
	}
	return browser + " on " + system
}

// MetaKeys seal and open session metadata under keys derived with HKDF from
// the cookie secrets, newest first: the newest seals, every one opens, so
// rotating the cookie secrets rotates these too. Safe for concurrent use.
type MetaKeys struct {
	keys []metaKey
}

type metaKey struct {
	seal [32]byte // AES-256-GCM key of the records
	tag  [32]byte // HMAC-SHA256 key of the email index
}

// NewMetaKeys derives the metadata keys from the cookie secrets (cookie.secrets), newest first.
func NewMetaKeys(secrets [][]byte) (*MetaKeys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("sessionstore: metadata keys: no secrets: at least one is required")
	}
	k := &MetaKeys{}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("sessionstore: metadata keys: secret #%d is %d bytes: must be at least %d bytes", i+1, len(s), MinSecretLen)
		}
		var mk metaKey
		if _, err := io.ReadFull(hkdf.New(sha256.New, s, nil, []byte(metaKeyInfo)), mk.seal[:]); err != nil {
			return nil, fmt.Errorf("sessionstore: metadata keys: %w", err)
		}
		if _, err := io.ReadFull(hkdf.New(sha256.New, s, nil, []byte(metaTagInfo)), mk.tag[:]); err != nil {
			return nil, fmt.Errorf("sessionstore: metadata keys: %w", err)
		}
		k.keys = append(k.keys, mk)
	}
	return k, nil
}

// SealedMeta is a Meta sealed for one session, ready for a store's SaveMeta.
type SealedMeta struct {
	blob     []byte
	sid      string
	emailTag string // "" without an email
	expires  time.Time
}

// Seal seals m for the session saved under t with the newest key. The
// record is bound to that session: it cannot be moved to another one.
func (k *MetaKeys) Seal(t Ticket, m Meta) (SealedMeta, error) {
	plain, err := json.Marshal(m)
	if err != nil {
		return SealedMeta{}, fmt.Errorf("sessionstore: encoding session metadata: %w", err)
	}
	blob, err := seal(k.keys[0].seal, metaAAD(storeHash(t.ID)), plain)
	if err != nil {
		return SealedMeta{}, err
	}
	sm := SealedMeta{blob: blob, sid: t.SID(), expires: m.ExpiresAt}
	if m.Email != "" {
		sm.emailTag = k.keys[0].emailTag(m.Email)
	}
	return sm, nil
}

// open opens a record sealed for the session with store hash h under any of the keys.
func (k *MetaKeys) open(h, blob string) (Meta, error) {
	for _, mk := range k.keys {
		plain, err := open(mk.seal, metaAAD(h), blob)
		if err != nil {
			continue
		}
		var m Meta
		if err := json.Unmarshal(plain, &m); err != nil {
			return Meta{}, fmt.Errorf("sessionstore: decoding session metadata: %w", err)
		}
		return m, nil
	}
	return Meta{}, errUndecryptable
}

// emailTags returns the email index tags of email under every key, newest first.
func (k *MetaKeys) emailTags(email string) []string {
	tags := make([]string, len(k.keys))
	for i, mk := range k.keys {
		tags[i] = mk.emailTag(email)
	}
	return tags
}

func (mk metaKey) emailTag(email string) string {
	m := hmac.New(sha256.New, mk.tag[:])
	m.Write([]byte(normalizeEmail(email)))
	return hex.EncodeToString(m.Sum(nil))
}

// normalizeEmail is how emails are compared: case-insensitively (providers
// and users treat them so), ignoring surrounding space.
func normalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func metaAAD(storeHash string) []byte {
	return []byte("gatehouse-session-meta\x00" + storeHash)
}

// metaScript writes a session's metadata only while the session saved with
// the same key exists (so it can neither resurrect a revoked session as a
// stub nor be written by someone without the key), and lists the email
// index in the session's index list, so ending the session leaves it.
//
// KEYS[1] session; ARGV[1] key verifier, ARGV[2] sealed metadata,
// ARGV[3] email index key or "".
var metaScript = redis.NewScript(metaScriptLua)

const metaScriptLua = `
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
	return 0
end
redis.call('HSET', KEYS[1], 'm', ARGV[2])
if ARGV[3] ~= '' then
	local x = redis.call('HGET', KEYS[1], 'x') or ''
	for k in string.gmatch(x, '%S+') do
		if k == ARGV[3] then
			return 1
		end
	end
	if x ~= '' then
		x = x .. ' '
	end
	redis.call('HSET', KEYS[1], 'x', x .. ARGV[3])
end
return 1
`

// sidKey maps a public sid to its session's store hash.
func (r *Redis) sidKey(sid string) string { return r.prefix + ":i:{" + sid + "}" }

// emailIndexKey is the revocation index of the sessions with one email.
func (r *Redis) emailIndexKey(tag string) string { return r.prefix + ":e:{" + tag + "}" }

// invalidationChannel is where writes announce the sessions every replica must drop from its cache.
func (r *Redis) invalidationChannel() string { return r.prefix + ":revoked" }

// SaveMeta stores the metadata of the session saved under t, which must
// still exist with the same key (ErrNotFound otherwise), and indexes it by
// its sid and email for `gatehouse sessions`. Call it after Save, at login.
// A failure leaves the session working; only the operator's view of it is
// incomplete (it is still listed and revoked by subject).
func (r *Redis) SaveMeta(ctx context.Context, t Ticket, m SealedMeta) error {
	h := storeHash(t.ID)
	ttl := m.expires.Sub(r.now())
	if ttl < time.Millisecond {
		return ErrNotFound
	}
	emailKey := ""
	if m.emailTag != "" {
		emailKey = r.emailIndexKey(m.emailTag)
	}
	verifier := keyVerifier(t.Key)
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	n, err := metaScript.Run(ctx, r.client, []string{r.key(h)}, verifier[:], m.blob, emailKey).Int()
	if err != nil {
		return fmt.Errorf("sessionstore: redis save metadata: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	// Written after the record: a revocation by email that reads the index
	// meanwhile finds a session that exists, or misses one it would also
	// have missed a moment earlier.
	now := r.now().UnixMilli()
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.sidKey(m.sid), h, ttl)
		if emailKey != "" {
			indexScript.Eval(ctx, p, []string{emailKey}, m.expires.UnixMilli(), h, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessionstore: redis save metadata: indexing: %w", err)
	}
	return nil
}

// SaveMeta stores the session's metadata in Redis; no replica caches it.
func (c *Cached) SaveMeta(ctx context.Context, t Ticket, m SealedMeta) error {
	return c.store.SaveMeta(ctx, t, m)
}

// SaveMeta does nothing: the memory store's sessions live in the serving
// process, where no operator's command can reach them, so nothing would
// ever read the record.
func (m *Memory) SaveMeta(context.Context, Ticket, SealedMeta) error { return nil }

// Selector names the sessions an operator lists or ends: exactly one field
// is set.
type Selector struct {
	Subject string // every session of the user with this subject
	Email   string // every session whose email is this one, whatever its case
	SID     string // the one session with this public sid
}

func (s Selector) check() error {
	n := 0
	for _, v := range []string{s.Subject, s.Email, s.SID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("sessionstore: select sessions by exactly one of subject, email or sid")
	}
	if s.SID != "" && !validSID(s.SID) {
		return fmt.Errorf("sessionstore: %q is not a session's sid (43 characters of base64url, the sid claim of minted tokens)", s.SID)
	}
	return nil
}

// validSID reports whether sid has the form of Ticket.SID.
func validSID(sid string) bool {
	if len(sid) != 43 {
		return false
	}
	for _, c := range []byte(sid) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SessionInfo is one live session as an operator sees it.
type SessionInfo struct {
	Meta
	// LastSeen is the last recorded activity: the latest Touch, else the
	// login. Touches are spaced, so it lags real activity by up to a tenth
	// of session.idle_timeout (at most a minute).
	LastSeen time.Time `json:"last_seen"`
	// Described is false when the session has no readable metadata: it was
	// created before Gatehouse recorded any, its metadata could not be
	// written, or it was sealed under a cookie secret since removed. Then
	// only ExpiresAt (and the Subject of a listing by subject) are known.
	Described bool `json:"described"`

	hash string // the store hash: tells apart sessions without metadata
}

// ErrUnannounced reports that sessions were ended in Redis but the other
// replicas could not be told to drop their cached copies: each serves its
// copy for at most session.cache_ttl more.
var ErrUnannounced = errors.New("sessionstore: sessions ended, but the invalidation could not be published to the replicas")

// Admin lists and ends sessions without their cookies, for operators
// (`gatehouse sessions`). It works against the same Redis as the serving
// replicas and announces what it ends on their invalidation channel, so
// their caches drop the sessions at once. Safe for concurrent use.
type Admin struct {
	store *Redis
	keys  *MetaKeys
}

// NewAdmin returns an Admin of store that opens metadata with keys (from
// the same cookie secrets the replicas use).
func NewAdmin(store *Redis, keys *MetaKeys) *Admin { return &Admin{store: store, keys: keys} }

// listPage is how many index members one listing step reads.
const listPage = 512

// List returns the live sessions sel names, soonest to expire first.
func (a *Admin) List(ctx context.Context, sel Selector) ([]SessionInfo, error) {
	if err := sel.check(); err != nil {
		return nil, err
	}
	r := a.store
	now := r.now()
	var out []SessionInfo
	switch {
	case sel.SID != "":
		h, err := a.sessionOf(ctx, sel.SID)
		if err != nil || h == "" {
			return nil, err
		}
		infos, err := a.describe(ctx, []redis.Z{{Member: h}}, now)
		if err != nil {
			return nil, err
		}
		out = infos
	case sel.Subject != "":
		infos, err := a.listIndex(ctx, r.indexKey("u", sel.Subject), now)
		if err != nil {
			return nil, err
		}
		for i := range infos {
			if !infos[i].Described {
				infos[i].Subject = sel.Subject
			}
		}
		out = infos
	default:
		seen := map[string]bool{}
		for _, tag := range a.keys.emailTags(sel.Email) {
			infos, err := a.listIndex(ctx, r.emailIndexKey(tag), now)
			if err != nil {
				return nil, err
			}
			for _, in := range infos {
				if !seen[in.hash] {
					seen[in.hash] = true
					out = append(out, in)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b SessionInfo) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	return out, nil
}

// sessionOf returns the store hash of the session with this sid, "" if unknown.
func (a *Admin) sessionOf(ctx context.Context, sid string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.store.opTimeout)
	defer cancel()
	h, err := a.store.client.Get(ctx, a.store.sidKey(sid)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sessionstore: redis: looking up the sid: %w", err)
	}
	return h, nil
}

// listIndex describes the live sessions of one index, page by page.
func (a *Admin) listIndex(ctx context.Context, key string, now time.Time) ([]SessionInfo, error) {
	var out []SessionInfo
	for start := int64(0); ; start += listPage {
		step, cancel := context.WithTimeout(ctx, a.store.opTimeout)
		members, err := a.store.client.ZRangeWithScores(step, key, start, start+listPage-1).Result()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("sessionstore: redis: reading the index: %w", err)
		}
		infos, err := a.describe(ctx, members, now)
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
		if len(members) < listPage {
			return out, nil
		}
	}
}

// describe reads the metadata of the sessions with these store hashes
// (scored by expiry when they come from an index) and returns those that
// still exist.
func (a *Admin) describe(ctx context.Context, members []redis.Z, now time.Time) ([]SessionInfo, error) {
	if len(members) == 0 {
		return nil, nil
	}
	r := a.store
	ctx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	cmds := make([]*redis.SliceCmd, len(members))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			// The verifier says the session exists (every saved session has one).
			cmds[i] = p.HMGet(ctx, r.key(m.Member.(string)), fieldVerifier, fieldMeta, fieldSeenUnix)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sessionstore: redis: reading sessions: %w", err)
	}
	var out []SessionInfo
	for i, c := range cmds {
		vals := c.Val()
		if len(vals) != 3 || vals[0] == nil {
			continue // ended since it was indexed
		}
		h := members[i].Member.(string)
		in := SessionInfo{hash: h}
		if blob, ok := vals[1].(string); ok {
			if m, err := a.keys.open(h, blob); err == nil {
				in.Meta, in.Described = m, true
				in.LastSeen = m.CreatedAt
			}
		}
		if !in.Described && members[i].Score > 0 {
			in.ExpiresAt = time.UnixMilli(int64(members[i].Score))
		}
		if s, ok := vals[2].(string); ok {
			if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec > in.LastSeen.Unix() {
				in.LastSeen = time.Unix(sec, 0)
			}
		}
		if !in.ExpiresAt.IsZero() && !now.Before(in.ExpiresAt) {
			continue
		}
		out = append(out, in)
	}
	return out, nil
}

// Revoke ends the sessions sel names, on every replica, and returns how
// many it ended. Sessions that were ended in Redis but could not be
// announced to the replicas come with an error wrapping ErrUnannounced.
func (a *Admin) Revoke(ctx context.Context, sel Selector) (int, error) {
	if err := sel.check(); err != nil {
		return 0, err
	}
	r := a.store
	var published []error
	announce := func(hashes []string) {
		if err := r.publish(ctx, hashes); err != nil {
			published = append(published, err)
		}
	}
	n := 0
	var err error
	switch {
	case sel.SID != "":
		var h string
		if h, err = a.sessionOf(ctx, sel.SID); err != nil || h == "" {
			return 0, err
		}
		dctx, cancel := context.WithTimeout(ctx, r.opTimeout)
		var deleted []string
		deleted, err = r.deleteAndUnindex(dctx, []string{h}, "")
		if err == nil {
			err = r.client.Del(dctx, r.sidKey(sel.SID)).Err()
		}
		cancel()
		n = len(deleted)
		if n > 0 {
			announce(deleted)
		}
	case sel.Subject != "":
		n, err = r.revokeIndexed(ctx, r.indexKey("u", sel.Subject), announce)
	default:
		for _, tag := range a.keys.emailTags(sel.Email) {
			var m int
			m, err = r.revokeIndexed(ctx, r.emailIndexKey(tag), announce)
			n += m
			if err != nil {
				break
			}
		}
	}
	if n > 0 {
		// Counted by every replica's cache (CacheStats.OperatorRevocations):
		// the command line has no /metrics of its own.
		announce([]string{operatorMarker + strconv.Itoa(n)})
	}
	if err != nil {
		return n, fmt.Errorf("sessionstore: revoking: %w", err)
	}
	if len(published) > 0 {
		return n, fmt.Errorf("%w: %w", ErrUnannounced, errors.Join(published...))
	}
	return n, nil
}

// operatorMarker starts the token with which Admin.Revoke tells the
// replicas how many sessions an operator ended. It is no store hash (those
// are hex), so a replica that does not know it drops a session that
// cannot exist.
const operatorMarker = "operator-revoked:"

// operatorRevocations reads an operatorMarker token.
func operatorRevocations(token string) (uint64, bool) {
	v, ok := strings.CutPrefix(token, operatorMarker)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return n, err == nil
}

// publish tells every replica's cache to drop these sessions, in batches.
func (r *Redis) publish(ctx context.Context, hashes []string) error {
	ctx = context.WithoutCancel(ctx) // the sessions are gone: announce it even if the caller gives up
	for len(hashes) > 0 {
		n := min(len(hashes), invalidationBatch)
		pctx, cancel := context.WithTimeout(ctx, r.opTimeout)
		err := r.client.Publish(pctx, r.invalidationChannel(), strings.Join(hashes[:n], " ")).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("sessionstore: publishing invalidation: %w", err)
		}
		hashes = hashes[n:]
	}
	return nil
}

// Ping reports whether Redis answers (see Redis.Ping).
func (a *Admin) Ping(ctx context.Context) error { return a.store.Ping(ctx) }
