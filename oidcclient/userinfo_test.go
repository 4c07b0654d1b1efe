package oidcclient

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// uiProvider is a provider with a token endpoint (answering the code and
// refresh grants with an ID token whose claims the test sets) and a
// userinfo endpoint whose answer the test sets; it counts userinfo calls.
type uiProvider struct {
	*httptest.Server
	key       *testKey
	userinfos atomic.Int64

	mu        sync.Mutex
	idClaims  map[string]any // extra ID-token claims; nil ID token when noIDToken
	noIDToken bool
	uiStatus  int
	uiType    string
	uiBody    string
	uiGot     string // Authorization header of the last userinfo call
	noUI      bool   // discovery advertises no userinfo endpoint
}

func newUIProvider(t *testing.T) *uiProvider {
	t.Helper()
	p := &uiProvider{key: newTestKey(t, "k1", jose.RS256), uiStatus: 200, uiType: "application/json"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		meta := map[string]any{
			"issuer":                                p.URL,
			"authorization_endpoint":                p.URL + "/authorize",
			"token_endpoint":                        p.URL + "/token",
			"jwks_uri":                              p.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		p.mu.Lock()
		if !p.noUI {
			meta["userinfo_endpoint"] = p.URL + "/userinfo"
		}
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(meta)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{p.key.jwk()}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		now := time.Now()
		claims := map[string]any{
			"iss": p.URL, "aud": testClientID, "sub": "user-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"email": "ada@example.com", "email_verified": true,
		}
		if r.PostForm.Get("grant_type") == "authorization_code" {
			claims["nonce"] = "nonce-1"
		}
		p.mu.Lock()
		for k, v := range p.idClaims {
			claims[k] = v
		}
		noID := p.noIDToken
		p.mu.Unlock()
		resp := map[string]any{"access_token": "opaque-at", "token_type": "Bearer", "expires_in": 300, "refresh_token": "rt-next"}
		if !noID {
			resp["id_token"] = p.key.sign(t, nil, claims)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		p.userinfos.Add(1)
		p.mu.Lock()
		status, typ, body := p.uiStatus, p.uiType, p.uiBody
		p.uiGot = r.Header.Get("Authorization")
		p.mu.Unlock()
		w.Header().Set("Content-Type", typ)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *uiProvider) set(f func(p *uiProvider)) { p.mu.Lock(); f(p); p.mu.Unlock() }

func (p *uiProvider) client(t *testing.T, groupsClaims ...string) *Client {
	t.Helper()
	c := New(Config{Issuer: p.URL, ClientID: testClientID, ClientSecret: "s", HTTPClient: p.Client(), GroupsClaims: groupsClaims})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *uiProvider) login(t *testing.T, c *Client) *Result {
	t.Helper()
	res, err := c.Exchange(t.Context(), "code-1", "verifier-0123456789012345678901234567890123456789", "nonce-1")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return res
}

// TestGroupsFromUserinfo: when the ID token names no groups (at none of
// the configured paths), the groups come from the userinfo endpoint, asked
// with the new access token, at login and at refresh; when it does,
// userinfo is not asked. A userinfo answer that is not about the user, not
// verifiable, or not there never fails a login or a refresh.
func TestGroupsFromUserinfo(t *testing.T) {
	userinfo := func(groups ...string) string {
		b, _ := json.Marshal(map[string]any{"sub": "user-1", "realm_access": map[string]any{"roles": groups}})
		return string(b)
	}
	for _, tc := range []struct {
		name      string
		setup     func(p *uiProvider)
		want      []string
		userinfos int64
	}{
		{"ID token has the groups", func(p *uiProvider) {
			p.idClaims = map[string]any{"groups": []string{"from-id-token"}}
			p.uiBody = userinfo("from-userinfo")
		}, []string{"from-id-token"}, 0},
		{"ID token has an empty list", func(p *uiProvider) {
			p.idClaims = map[string]any{"groups": []string{}}
			p.uiBody = userinfo("from-userinfo")
		}, nil, 0},
		{"userinfo has them", func(p *uiProvider) { p.uiBody = userinfo("admins", "staff", "admins") }, []string{"admins", "staff"}, 1},
		{"userinfo has none", func(p *uiProvider) { p.uiBody = `{"sub":"user-1"}` }, nil, 1},
		{"userinfo about another user", func(p *uiProvider) {
			p.uiBody = `{"sub":"someone-else","groups":["admins"]}`
		}, nil, 1},
		{"userinfo without sub", func(p *uiProvider) { p.uiBody = `{"groups":["admins"]}` }, nil, 1},
		{"userinfo fails", func(p *uiProvider) { p.uiStatus, p.uiBody = 500, userinfo("admins") }, nil, 1},
		{"userinfo not JSON", func(p *uiProvider) { p.uiBody = `["admins"]` }, nil, 1},
		{"userinfo too large", func(p *uiProvider) {
			p.uiBody = `{"sub":"user-1","groups":["` + strings.Repeat("a", maxUserinfoSize) + `"]}`
		}, nil, 1},
		{"no userinfo endpoint", func(p *uiProvider) { p.noUI = true }, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newUIProvider(t)
			p.set(tc.setup)
			res := p.login(t, p.client(t, "realm_access.roles"))
			if !reflect.DeepEqual(res.Identity.Groups, tc.want) {
				t.Errorf("groups %q; want %q", res.Identity.Groups, tc.want)
			}
			if n := p.userinfos.Load(); n != tc.userinfos {
				t.Errorf("%d userinfo calls; want %d", n, tc.userinfos)
			}
			if tc.userinfos > 0 && p.uiGot != "Bearer opaque-at" {
				t.Errorf("userinfo was asked with %q; want the access token", p.uiGot)
			}
		})
	}
}

// TestGroupsFromSignedUserinfo: a signed userinfo answer (application/jwt)
// counts only when it verifies with the provider's keys and names the
// provider and this client.
func TestGroupsFromSignedUserinfo(t *testing.T) {
	p := newUIProvider(t)
	other := newTestKey(t, "k1", jose.RS256) // same kid, not the provider's key
	claims := func(aud string) map[string]any {
		return map[string]any{"iss": p.URL, "aud": aud, "sub": "user-1", "groups": []string{"signed"}}
	}
	for _, tc := range []struct {
		name string
		body string
		want []string
	}{
		{"valid", p.key.sign(t, nil, claims(testClientID)), []string{"signed"}},
		{"another audience", p.key.sign(t, nil, claims("other-client")), nil},
		{"forged", other.sign(t, nil, claims(testClientID)), nil},
		{"garbage", "a.b.c", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.set(func(p *uiProvider) { p.uiType, p.uiBody = "application/jwt; charset=utf-8", tc.body })
			res := p.login(t, p.client(t))
			if !reflect.DeepEqual(res.Identity.Groups, tc.want) {
				t.Errorf("groups %q; want %q", res.Identity.Groups, tc.want)
			}
		})
	}
}

// TestRefreshGroupsFromUserinfo: a refresh keeps the session's groups
// unless userinfo answers with new ones; one whose new ID token names no
// groups takes userinfo's answer, and keeps the old groups only when
// userinfo cannot be asked.
func TestRefreshGroupsFromUserinfo(t *testing.T) {
	prev := Identity{Subject: "user-1", Groups: []string{"old"}}
	for _, tc := range []struct {
		name    string
		noID    bool
		status  int
		body    string
		want    []string
		refresh string
	}{
		{"no ID token, userinfo has groups", true, 200, `{"sub":"user-1","groups":["new"]}`, []string{"new"}, "rt-next"},
		{"no ID token, userinfo has none", true, 200, `{"sub":"user-1"}`, []string{"old"}, "rt-next"},
		{"no ID token, userinfo fails", true, 503, ``, []string{"old"}, "rt-next"},
		{"ID token without groups, userinfo has none", false, 200, `{"sub":"user-1"}`, nil, "rt-next"},
		{"ID token without groups, userinfo has groups", false, 200, `{"sub":"user-1","groups":["new"]}`, []string{"new"}, "rt-next"},
		{"ID token without groups, userinfo fails", false, 500, ``, []string{"old"}, "rt-next"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newUIProvider(t)
			p.set(func(p *uiProvider) { p.noIDToken, p.uiStatus, p.uiBody = tc.noID, tc.status, tc.body })
			c := p.client(t)
			res, err := c.Refresh(t.Context(), "rt-1", prev)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if !reflect.DeepEqual(res.Identity.Groups, tc.want) || res.RefreshToken != tc.refresh {
				t.Errorf("groups %q, refresh token %q; want %q, %q", res.Identity.Groups, res.RefreshToken, tc.want, tc.refresh)
			}
			if n := p.userinfos.Load(); n != 1 {
				t.Errorf("%d userinfo calls; want 1", n)
			}
		})
	}
}
