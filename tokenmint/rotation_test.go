package tokenmint_test

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// TestRotationCycle walks one key through publish, promote and retire: the
// new key is published before it signs, the mint cache survives the steps
// that do not change the signer and is dropped at promotion, and tokens of
// the old key keep verifying until it is retired.
func TestRotationCycle(t *testing.T) {
	clk := newClock()
	oldKey, newKey := testKey(t, "ES256", 0), testKey(t, "ES256", 1)
	m := newMinter(t, clk, oldKey)
	id := fullIdentity()
	before := mint(t, m, "s1", "api", id)

	step := func(name string, keys ...*tokenmint.Key) {
		t.Helper()
		if err := m.SetKeys(keys); err != nil {
			t.Fatalf("%s: SetKeys: %v", name, err)
		}
		var want []string
		for _, k := range keys {
			want = append(want, k.KeyID())
		}
		if got := kids(m.JWKS()); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: JWKS kids = %v; want %v", name, got, want)
		}
	}

	step("publish", oldKey, newKey)
	if got := mint(t, m, "s1", "api", id); got.Raw != before.Raw {
		t.Error("publishing a key that does not sign dropped the cached token; want it kept")
	}
	if hdr, _ := parseMinted(t, m, mint(t, m, "", "api", id), "ES256"); hdr["kid"] != oldKey.KeyID() {
		t.Errorf("after publish a token is signed by %v; want the old key %s until promotion", hdr["kid"], oldKey.KeyID())
	}

	step("promote", newKey, oldKey)
	promoted := mint(t, m, "s1", "api", id)
	if promoted.Raw == before.Raw {
		t.Fatal("after promotion the cached token of the demoted key was handed out; want the cache dropped")
	}
	if hdr, _ := parseMinted(t, m, promoted, "ES256"); hdr["kid"] != newKey.KeyID() {
		t.Errorf("after promotion a token is signed by %v; want %s", hdr["kid"], newKey.KeyID())
	}
	if _, cl := parseMinted(t, m, before, "ES256"); cl["sub"] != "user-123" {
		t.Error("a token of the demoted key no longer verifies while the key is still published")
	}

	step("retire", newKey)
	if got := mint(t, m, "s1", "api", id); got.Raw != promoted.Raw {
		t.Error("retiring a key that no longer signs dropped the cached token; want it kept")
	}
	jwks := m.JWKS()
	if jws, err := jose.ParseSignedCompact(before.Raw, []jose.SignatureAlgorithm{jose.ES256}); err != nil {
		t.Fatal(err)
	} else if _, err := jws.Verify(&jwks); err == nil {
		t.Error("a token of the retired key still verifies against the JWKS")
	}

	// The same key read again from its file is a new value with the same kid:
	// nothing changed, nothing is dropped.
	pem, err := newKey.PEM()
	if err != nil {
		t.Fatal(err)
	}
	again, err := tokenmint.ParseKeyPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	step("reload", again)
	if got := mint(t, m, "s1", "api", id); got.Raw != promoted.Raw {
		t.Error("loading the same key again dropped the cached token; want it kept")
	}
}

// TestReconfigure changes the issuer and the lifetime at run time: new tokens
// carry them at once (the cache is dropped), and a bad change is refused as a
// whole, naming every problem, with nothing changed.
func TestReconfigure(t *testing.T) {
	clk := newClock()
	k1, k2 := testKey(t, "ES256", 0), testKey(t, "EdDSA", 0)
	m := newMinter(t, clk, k1)
	id := fullIdentity()
	first := mint(t, m, "s1", "api", id)

	if err := m.Reconfigure("https://new.example.com", 10*time.Minute, []*tokenmint.Key{k1}); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	tok := mint(t, m, "s1", "api", id)
	if tok.Raw == first.Raw {
		t.Fatal("after a new issuer and TTL the cached token was handed out; want the cache dropped")
	}
	_, cl := parseMinted(t, m, tok, "ES256")
	if cl["iss"] != "https://new.example.com" {
		t.Errorf("iss = %v; want the new issuer", cl["iss"])
	}
	if want := clk.Now().Add(10 * time.Minute); !tok.Expiry.Equal(want) || cl["exp"] != float64(want.Unix()) {
		t.Errorf("expiry = %v (exp %v); want %v", tok.Expiry, cl["exp"], want)
	}

	err := m.Reconfigure(" ", 5*time.Second, []*tokenmint.Key{k2})
	if err == nil {
		t.Fatal("Reconfigure with an empty issuer and a 5s TTL succeeded; want an error")
	}
	for _, want := range []string{"Issuer is empty", "TTL 5s is outside"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := mint(t, m, "s1", "api", id); got.Raw != tok.Raw {
		t.Error("a refused Reconfigure dropped the cache")
	}
	if got := kids(m.JWKS()); !reflect.DeepEqual(got, []string{k1.KeyID()}) {
		t.Errorf("a refused Reconfigure changed the JWKS to %v", got)
	}
	if err := m.Reconfigure("https://new.example.com", 0, nil); err == nil {
		t.Error("Reconfigure without keys succeeded; want an error")
	}
}

// TestRotationWhileMinting rotates keys while many callers mint: every token
// handed out verifies against the JWKS served right after (keys are only
// added here, as during publish and promote), and the race detector watches
// the shared state.
func TestRotationWhileMinting(t *testing.T) {
	clk := newClock()
	keys := []*tokenmint.Key{testKey(t, "ES256", 0)}
	m := newMinter(t, clk, keys...)
	id := fullIdentity()

	stop := make(chan struct{})
	errs := make(chan string, 64)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := m.Mint(t.Context(), []string{"s1", "s2", ""}[(w+i)%3], "api", id)
				if err != nil {
					errs <- err.Error()
					return
				}
				jwks := m.JWKS()
				jws, err := jose.ParseSignedCompact(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
				if err == nil {
					_, err = jws.Verify(&jwks)
				}
				if err != nil {
					errs <- "a minted token does not verify against the JWKS served after it: " + err.Error()
					return
				}
			}
		})
	}
	for i := 1; i <= 6; i++ {
		k, err := tokenmint.GenerateKey("ES256")
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k) // publish
		if err := m.SetKeys(keys); err != nil {
			t.Fatal(err)
		}
		keys = append([]*tokenmint.Key{k}, keys[:len(keys)-1]...) // promote
		if err := m.SetKeys(keys); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
