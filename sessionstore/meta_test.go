package sessionstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

func TestDeviceOf(t *testing.T) {
	tests := []struct {
		name, ua, want string
	}{
		{"empty", "", ""},
		{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"},
		{"Chrome on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Edge claims Chrome too", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"},
		{"Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"},
		{"Safari on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iOS"},
		{"Chrome on Android claims Linux too", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"curl", "curl/8.5.0", "curl on unknown system"},
		{"unknown", "something/1.0", "unknown browser on unknown system"},
		{"control characters never pass through", "\x1b[31mFirefox/1\x1b[0m (Linux)", "Firefox on Linux"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DeviceOf(tt.ua); got != tt.want {
				t.Errorf("DeviceOf(%q) = %q; want %q", tt.ua, got, tt.want)
			}
		})
	}
}

// deviceVocabulary is every string DeviceOf may return.
func deviceVocabulary() map[string]bool {
	browsers := []string{"unknown browser"}
	for _, b := range uaBrowsers {
		browsers = append(browsers, b.name)
	}
	systems := []string{"unknown system"}
	for _, s := range uaSystems {
		systems = append(systems, s.name)
	}
	out := map[string]bool{"": true}
	for _, b := range browsers {
		for _, s := range systems {
			out[b+" on "+s] = true
		}
	}
	return out
}

// FuzzDeviceOf: whatever a client sends as its User-Agent, the summary an
// operator's terminal shows is one of the fixed phrases, empty only for an
// empty header, and does not depend on anything past the bytes read.
func FuzzDeviceOf(f *testing.F) {
	for _, s := range []string{
		"",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Windows NT 10.0) Chrome/126.0.0.0 Safari/537.36 Edg/126.0",
		"\x1b]0;owned\x07 Firefox/",
		strings.Repeat("A", maxUALen) + "Firefox/1 Linux",
	} {
		f.Add(s)
	}
	vocab := deviceVocabulary()
	f.Fuzz(func(t *testing.T, ua string) {
		got := DeviceOf(ua)
		if !vocab[got] {
			t.Fatalf("DeviceOf(%q) = %q: not in the fixed vocabulary", ua, got)
		}
		if (got == "") != (ua == "") {
			t.Fatalf("DeviceOf(%q) = %q: empty exactly when the header is", ua, got)
		}
		if len(ua) > maxUALen && DeviceOf(ua[:maxUALen]) != got {
			t.Fatalf("DeviceOf read past the first %d bytes", maxUALen)
		}
	})
}

func TestNetworkOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"2001:db8:1234:5678::1", "2001:db8:1234::/48"},
		{"fe80::1%eth0", "fe80::/48"},
	}
	for _, tt := range tests {
		if got := NetworkOf(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("NetworkOf(%s) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if got := NetworkOf(netip.Addr{}); got != "" {
		t.Errorf("NetworkOf(invalid) = %q; want empty", got)
	}
}

// FuzzNetworkOf: the network shown contains the address and never reveals
// more of it than a /24 or a /48.
func FuzzNetworkOf(f *testing.F) {
	f.Add([]byte{203, 0, 113, 77})
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice())
	f.Add(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice())
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, ok := netip.AddrFromSlice(b)
		got := NetworkOf(addr)
		if !ok {
			if got != "" {
				t.Fatalf("NetworkOf(invalid) = %q", got)
			}
			return
		}
		p, err := netip.ParsePrefix(got)
		if err != nil {
			t.Fatalf("NetworkOf(%s) = %q: not a prefix: %v", addr, got, err)
		}
		want := 48
		if addr.Unmap().Is4() {
			want = 24
		}
		if p.Bits() != want || !p.Contains(addr.Unmap()) || p != p.Masked() {
			t.Fatalf("NetworkOf(%s) = %s; want the masked /%d containing it", addr, p, want)
		}
	})
}

func TestMetaKeysRotation(t *testing.T) {
	oldSecret, newSecret := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	old, err := NewMetaKeys([][]byte{oldSecret})
	if err != nil {
		t.Fatal(err)
	}
	tk, other := mustTicket(t), mustTicket(t)
	m := Meta{SID: tk.SID(), Subject: "alice", Email: "Alice@Example.com", CreatedAt: time.Unix(1, 0).UTC()}
	sealed, err := old.Seal(tk, m)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewMetaKeys([][]byte{newSecret, oldSecret})
	retired, _ := NewMetaKeys([][]byte{newSecret})
	if got, err := rotated.open(storeHash(tk.ID), string(sealed.blob)); err != nil || got != m {
		t.Errorf("opened after rotation = %+v, %v; want %+v", got, err, m)
	}
	if _, err := retired.open(storeHash(tk.ID), string(sealed.blob)); err == nil {
		t.Error("opened with the old secret retired")
	}
	if _, err := old.open(storeHash(other.ID), string(sealed.blob)); err == nil {
		t.Error("a record opened as another session's")
	}
	if !slices.Contains(rotated.emailTags("alice@example.COM "), sealed.emailTag) {
		t.Error("the email tag depends on case or surrounding space")
	}
	if strings.Contains(sealed.emailTag, "alice") || slices.Contains(retired.emailTags("alice@example.com"), sealed.emailTag) {
		t.Error("the email tag does not depend on the secret")
	}
	if _, err := NewMetaKeys([][]byte{[]byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
}

// metaFixture is a Redis store, an Admin on it, and a second replica's
// cache that records the invalidations it receives.
type metaFixture struct {
	ctx     context.Context
	clock   *fakeClock
	store   *Redis
	keys    *MetaKeys
	admin   *Admin
	replica *Cached
	got     <-chan string
}

func newMetaFixture(t *testing.T, srv *testredis.Server) *metaFixture {
	clock := newFakeClock()
	f := &metaFixture{ctx: context.Background(), clock: clock, store: newRedisStore(t, srv, clock.Now)}
	var err error
	if f.keys, err = NewMetaKeys([][]byte{[]byte(strings.Repeat("k", 40))}); err != nil {
		t.Fatal(err)
	}
	f.admin = NewAdmin(f.store, f.keys)
	peer, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, KeyPrefix: f.store.prefix, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.replica = NewCached(peer, CacheConfig{TTL: time.Hour, Now: clock.Now})
	t.Cleanup(func() { f.replica.Close() })
	f.got = messages(f.replica)
	<-f.replica.subscribed
	return f
}

// login saves a session as the proxy does at login, with its metadata.
func (f *metaFixture) login(t *testing.T, sub, email, ua, ip string) Ticket {
	t.Helper()
	tk := mustTicket(t)
	now := f.clock.Now()
	s := &Session{Subject: sub, Email: email, AccessToken: "access-token-" + tk.SID(), RefreshToken: "refresh-token",
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(12 * time.Hour)}
	if err := f.store.Save(f.ctx, tk, s); err != nil {
		t.Fatal(err)
	}
	sealed, err := f.keys.Seal(tk, NewMeta(tk, s, ClientBrowser, ua, netip.MustParseAddr(ip)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.SaveMeta(f.ctx, tk, sealed); err != nil {
		t.Fatalf("SaveMeta: %v", err)
	}
	return tk
}

func (f *metaFixture) alive(t *testing.T, tk Ticket) bool {
	t.Helper()
	_, err := f.store.Load(f.ctx, tk)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func sids(infos []SessionInfo) []string {
	var out []string
	for _, in := range infos {
		out = append(out, in.SID)
	}
	slices.Sort(out)
	return out
}

func sidsOf(tks ...Ticket) []string {
	var out []string
	for _, tk := range tks {
		out = append(out, tk.SID())
	}
	slices.Sort(out)
	return out
}

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// TestAdminListAndRevoke: an operator lists a user's sessions by subject,
// email and sid, with what each was signed in from, and ends exactly the
// sessions named, on every replica.
func TestAdminListAndRevoke(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	f := newMetaFixture(t, srv)
	ctx := f.ctx

	laptop := f.login(t, "u-alice", "alice@example.com", firefox, "203.0.113.77")
	f.clock.Advance(time.Minute)
	phone := f.login(t, "u-alice", "Alice@Example.com", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1", "2001:db8:1:2::9")
	other := f.login(t, "u-alice", "alice@work.example", firefox, "198.51.100.1")
	bob := f.login(t, "u-bob", "bob@example.com", firefox, "203.0.113.8")
	// A session saved before metadata existed: listed by subject, undescribed.
	bare := mustTicket(t)
	now := f.clock.Now()
	if err := f.store.Save(ctx, bare, &Session{Subject: "u-alice", CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Minute)
	seen := f.clock.Now()
	if err := f.store.Touch(ctx, laptop, seen); err != nil {
		t.Fatal(err)
	}

	all, err := f.admin.List(ctx, Selector{Subject: "u-alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("List(sub) = %d sessions; want 4: %+v", len(all), all)
	}
	var undescribed int
	for _, in := range all {
		if !in.Described {
			undescribed++
			if in.Subject != "u-alice" || !in.ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Millisecond)) {
				t.Errorf("undescribed session = %+v; want the subject and its expiry", in)
			}
			continue
		}
		if in.Client != ClientBrowser || in.Subject != "u-alice" {
			t.Errorf("session %s = %+v; want client browser, subject u-alice", in.SID, in)
		}
		switch in.SID {
		case laptop.SID():
			if in.Device != "Firefox on Linux" || in.Network != "203.0.113.0/24" || in.LastSeen.Unix() != seen.Unix() {
				t.Errorf("laptop = %+v; want Firefox on Linux, 203.0.113.0/24, last seen %v", in, seen)
			}
		case phone.SID():
			if in.Device != "Safari on iOS" || in.Network != "2001:db8:1::/48" || !in.LastSeen.Equal(in.CreatedAt) {
				t.Errorf("phone = %+v; want Safari on iOS, 2001:db8:1::/48, last seen at login", in)
			}
		}
	}
	if undescribed != 1 {
		t.Errorf("%d undescribed sessions; want 1", undescribed)
	}

	byEmail, err := f.admin.List(ctx, Selector{Email: "ALICE@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sids(byEmail), sidsOf(laptop, phone); !slices.Equal(got, want) {
		t.Errorf("List(email) = %v; want %v (both cases of the address, not the other address)", got, want)
	}
	bySID, err := f.admin.List(ctx, Selector{SID: bob.SID()})
	if err != nil {
		t.Fatal(err)
	}
	if len(bySID) != 1 || bySID[0].Email != "bob@example.com" {
		t.Errorf("List(sid) = %+v; want bob's one session", bySID)
	}
	unknown := mustTicket(t).SID()
	if none, err := f.admin.List(ctx, Selector{SID: unknown}); err != nil || len(none) != 0 {
		t.Errorf("List(unknown sid) = %v, %v; want nothing", none, err)
	}
	for _, bad := range []string{"no-such-sid", laptop.SID() + "x", strings.Repeat("}", 43)} {
		if _, err := f.admin.Revoke(ctx, Selector{SID: bad}); err == nil || !strings.Contains(err.Error(), "not a session's sid") {
			t.Errorf("Revoke(sid %q) = %v; want an error saying it is not a sid", bad, err)
		}
	}

	// By sid: exactly that session, announced to the replicas.
	if n, err := f.admin.Revoke(ctx, Selector{SID: laptop.SID()}); err != nil || n != 1 {
		t.Fatalf("Revoke(sid) = %d, %v; want 1", n, err)
	}
	awaitMessage(t, f.got, storeHash(laptop.ID))
	if f.alive(t, laptop) || !f.alive(t, phone) || !f.alive(t, other) || !f.alive(t, bob) {
		t.Fatal("Revoke(sid) ended another session than the one named, or not that one")
	}
	if n, err := f.admin.Revoke(ctx, Selector{SID: laptop.SID()}); err != nil || n != 0 {
		t.Errorf("Revoke(sid) again = %d, %v; want 0", n, err)
	}
	// By email: the sessions with that address, whatever its case.
	if n, err := f.admin.Revoke(ctx, Selector{Email: "alice@EXAMPLE.com"}); err != nil || n != 1 {
		t.Fatalf("Revoke(email) = %d, %v; want 1 (the phone)", n, err)
	}
	awaitMessage(t, f.got, storeHash(phone.ID))
	if f.alive(t, phone) || !f.alive(t, other) || !f.alive(t, bob) {
		t.Fatal("Revoke(email) ended the wrong sessions")
	}
	// By subject: the rest of alice's, never bob's.
	if n, err := f.admin.Revoke(ctx, Selector{Subject: "u-alice"}); err != nil || n != 2 {
		t.Fatalf("Revoke(sub) = %d, %v; want 2", n, err)
	}
	awaitMessage(t, f.got, storeHash(other.ID))
	if f.alive(t, other) || f.alive(t, bare) || !f.alive(t, bob) {
		t.Fatal("Revoke(sub) ended the wrong sessions")
	}
	if left, err := f.admin.List(ctx, Selector{Subject: "u-alice"}); err != nil || len(left) != 0 {
		t.Errorf("List(sub) after the revocations = %+v, %v; want none", left, err)
	}
	// Each revocation also told the replica how many it ended, for its metrics.
	awaitMessage(t, f.got, operatorMarker+"2")
	if got := f.replica.Stats().OperatorRevocations; got != 4 {
		t.Errorf("the replica counted %d operator revocations; want 4 (1 by sid, 1 by email, 2 by subject)", got)
	}

	if _, err := f.admin.List(ctx, Selector{Subject: "a", Email: "b"}); err == nil {
		t.Error("List with two selectors succeeded")
	}
	if _, err := f.admin.Revoke(ctx, Selector{}); err == nil {
		t.Error("Revoke with no selector succeeded")
	}
}

// TestSaveMetaNeedsTheLiveSession: metadata is written only next to a
// session that exists under the same key, so it never creates a stub a
// listing would show, and ending a session takes it out of the email
// index (it is listed in the session's index list).
func TestSaveMetaNeedsTheLiveSession(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	f := newMetaFixture(t, srv)
	ctx := f.ctx
	raw := rawClient(t, srv)

	tk := f.login(t, "u-carol", "carol@example.com", firefox, "203.0.113.1")
	now := f.clock.Now()
	s := &Session{Subject: "u-carol", Email: "carol@example.com", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	sealed, err := f.keys.Seal(tk, NewMeta(tk, s, ClientBrowser, firefox, netip.Addr{}))
	if err != nil {
		t.Fatal(err)
	}
	// Saving twice lists the email index once.
	if err := f.store.SaveMeta(ctx, tk, sealed); err != nil {
		t.Fatal(err)
	}
	x, err := raw.HGet(ctx, f.store.key(storeHash(tk.ID)), fieldIndexes).Result()
	if err != nil {
		t.Fatal(err)
	}
	emailKey := f.store.emailIndexKey(sealed.emailTag)
	if n := strings.Count(x, emailKey); n != 1 {
		t.Errorf("index list %q names the email index %d times; want 1", x, n)
	}

	wrongKey := tk
	wrongKey.Key[0] ^= 1
	if err := f.store.SaveMeta(ctx, wrongKey, sealed); !errors.Is(err, ErrNotFound) {
		t.Errorf("SaveMeta with another key = %v; want ErrNotFound", err)
	}
	if err := f.store.Delete(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.ZCard(ctx, emailKey).Result(); err != nil || n != 0 {
		t.Errorf("email index after the sign-out: %d members, %v; want 0", n, err)
	}
	if err := f.store.SaveMeta(ctx, tk, sealed); !errors.Is(err, ErrNotFound) {
		t.Errorf("SaveMeta after Delete = %v; want ErrNotFound", err)
	}
	if n, _ := raw.Exists(ctx, f.store.key(storeHash(tk.ID))).Result(); n != 0 {
		t.Error("SaveMeta after Delete left a stub session key")
	}
	if got, err := f.admin.List(ctx, Selector{SID: tk.SID()}); err != nil || len(got) != 0 {
		t.Errorf("List(sid) of an ended session = %+v, %v; want nothing", got, err)
	}

	// Nothing secret reaches the metadata record: not the tokens, not the key.
	tk2 := f.login(t, "u-carol", "carol@example.com", firefox, "203.0.113.1")
	infos, err := f.admin.List(ctx, Selector{SID: tk2.SID()})
	if err != nil || len(infos) != 1 {
		t.Fatalf("List(sid) = %+v, %v", infos, err)
	}
	plain, err := f.keys.open(storeHash(tk2.ID), mustHGet(t, raw, f.store.key(storeHash(tk2.ID)), fieldMeta))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"access-token", "refresh-token"} {
		if strings.Contains(plain.Subject+plain.Email+plain.Device+plain.Network+plain.SID, secret) {
			t.Errorf("metadata holds %s", secret)
		}
	}
}

func mustHGet(t *testing.T, raw *redis.Client, key, field string) string {
	t.Helper()
	v, err := raw.HGet(context.Background(), key, field).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMemorySaveMeta: the memory store keeps no metadata and says so by
// succeeding without effect; the command line refuses it anyway.
func TestMemorySaveMeta(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	if err := m.SaveMeta(context.Background(), mustTicket(t), SealedMeta{}); err != nil {
		t.Fatal(err)
	}
}

// TestAdminDocumentedACL runs the operator's commands as the Redis user
// docs/kubernetes.md documents, so the ACL covers `gatehouse sessions` too.
func TestAdminDocumentedACL(t *testing.T) {
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	var acl string
	for line := range strings.Lines(string(doc)) {
		if strings.HasPrefix(line, "ACL SETUSER gatehouse ") {
			acl = strings.TrimSpace(line)
		}
	}
	srv := testredis.Start(t, testredis.Options{})
	ctx := context.Background()
	acl = strings.Replace(acl, ">CHANGE-ME", ">acl-test-pw", 1)
	var args []any
	for _, f := range strings.Fields(acl) {
		args = append(args, f)
	}
	if err := rawClient(t, srv).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("%s: %v", acl, err)
	}
	clock := newFakeClock()
	store, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, Username: "gatehouse", Password: "acl-test-pw", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &metaFixture{ctx: ctx, clock: clock, store: store}
	f.keys, _ = NewMetaKeys([][]byte{[]byte(strings.Repeat("k", 40))})
	f.admin = NewAdmin(store, f.keys)
	tk := f.login(t, "u-dave", "dave@example.com", firefox, "203.0.113.4")
	if err := store.Touch(ctx, tk, clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []Selector{{Subject: "u-dave"}, {Email: "dave@example.com"}, {SID: tk.SID()}} {
		if got, err := f.admin.List(ctx, sel); err != nil || len(got) != 1 {
			t.Errorf("List(%+v) as the documented user = %d, %v; want 1", sel, len(got), err)
		}
	}
	for _, sel := range []Selector{{SID: tk.SID()}, {Email: "dave@example.com"}, {Subject: "u-dave"}} {
		if sel.SID == "" {
			f.login(t, "u-dave", "dave@example.com", firefox, "203.0.113.4")
		}
		if n, err := f.admin.Revoke(ctx, sel); err != nil || n != 1 {
			t.Errorf("Revoke(%+v) as the documented user = %d, %v; want 1", sel, n, err)
		}
	}
	if err := f.admin.Ping(ctx); err != nil {
		t.Errorf("Ping as the documented user: %v", err)
	}
}

// TestAdminCluster: on a Redis Cluster a session, its indexes and its sid
// key sit on different slots; listing and revoking by each selector still
// finds exactly the sessions named.
func TestAdminCluster(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	clock := newFakeClock()
	store, err := NewRedis(RedisConfig{Mode: ModeCluster, Addrs: c.Addrs()[:1], KeyPrefix: "meta", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &metaFixture{ctx: context.Background(), clock: clock, store: store}
	f.keys, _ = NewMetaKeys([][]byte{[]byte(strings.Repeat("k", 40))})
	f.admin = NewAdmin(store, f.keys)
	ctx := f.ctx

	a1 := f.login(t, "u-erin", "erin@example.com", firefox, "203.0.113.5")
	a2 := f.login(t, "u-erin", "erin@example.com", firefox, "203.0.113.6")
	a3 := f.login(t, "u-erin", "erin@other.example", firefox, "203.0.113.7")
	other := f.login(t, "u-frank", "frank@example.com", firefox, "203.0.113.8")
	for _, tt := range []struct {
		sel  Selector
		want []string
	}{
		{Selector{Subject: "u-erin"}, sidsOf(a1, a2, a3)},
		{Selector{Email: "ERIN@example.com"}, sidsOf(a1, a2)},
		{Selector{SID: other.SID()}, sidsOf(other)},
	} {
		got, err := f.admin.List(ctx, tt.sel)
		if err != nil {
			t.Fatalf("List(%+v): %v", tt.sel, err)
		}
		if !slices.Equal(sids(got), tt.want) {
			t.Errorf("List(%+v) = %v; want %v", tt.sel, sids(got), tt.want)
		}
	}
	if n, err := f.admin.Revoke(ctx, Selector{SID: a3.SID()}); err != nil || n != 1 {
		t.Fatalf("Revoke(sid) = %d, %v; want 1", n, err)
	}
	if n, err := f.admin.Revoke(ctx, Selector{Email: "erin@example.com"}); err != nil || n != 2 {
		t.Fatalf("Revoke(email) = %d, %v; want 2", n, err)
	}
	if f.alive(t, a1) || f.alive(t, a2) || f.alive(t, a3) || !f.alive(t, other) {
		t.Error("the revocations ended the wrong sessions")
	}
	if left, err := f.admin.List(ctx, Selector{Subject: "u-erin"}); err != nil || len(left) != 0 {
		t.Errorf("List(sub) after the revocations = %v, %v; want none", sids(left), err)
	}
}
