package tokenmint_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/tokenmint"
)

func TestMiddleware(t *testing.T) {
	e := newVerifyEnv(t)
	v := e.verifier(t)
	var (
		calls   atomic.Int64
		subject atomic.Value
	)
	app := serveCounting(t, v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c, ok := tokenmint.ClaimsFromContext(r.Context())
		if !ok {
			http.Error(w, "no claims in context", http.StatusInternalServerError)
			return
		}
		subject.Store(c.Subject)
		_, _ = io.WriteString(w, "hello "+c.PreferredUsername)
	})))
	var firstBody atomic.Value // every rejection gets the same body, whatever the reason
	valid := mint(t, e.minter, "", testAudience, fullIdentity()).Raw
	expired := signJWS(t, e.es, header(e.es), claims(e.clk.Now().Add(-10*time.Minute)))

	tests := []struct {
		name      string
		auth      []string // Authorization header values
		status    int
		challenge string // WWW-Authenticate; default for 401: Bearer error="invalid_token"
	}{
		{name: "valid", auth: []string{"Bearer " + valid}, status: http.StatusOK},
		{name: "scheme in lower case", auth: []string{"bearer " + valid}, status: http.StatusOK},
		{name: "no header", status: http.StatusUnauthorized, challenge: "Bearer"},
		{name: "empty header", auth: []string{""}, status: http.StatusUnauthorized},
		{name: "scheme only", auth: []string{"Bearer"}, status: http.StatusUnauthorized},
		{name: "scheme and space", auth: []string{"Bearer "}, status: http.StatusUnauthorized},
		{name: "garbage token", auth: []string{"Bearer garbage"}, status: http.StatusUnauthorized},
		{name: "expired token", auth: []string{"Bearer " + expired}, status: http.StatusUnauthorized},
		{name: "Basic scheme", auth: []string{"Basic dXNlcjpwYXNz"}, status: http.StatusUnauthorized},
		{name: "token without scheme", auth: []string{valid}, status: http.StatusUnauthorized},
		{name: "two tokens in one header", auth: []string{"Bearer " + valid + " " + valid}, status: http.StatusUnauthorized},
		{name: "two headers", auth: []string{"Bearer " + valid, "Bearer " + valid}, status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, app.URL+"/api/items", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d; want %d (body %s)", res.StatusCode, tt.status, body)
			}
			if tt.status == http.StatusOK {
				if string(body) != "hello ada" || subject.Load() != "user-123" {
					t.Errorf("handler saw body %q subject %v; want the token's claims", body, subject.Load())
				}
				return
			}
			if calls.Load() != before {
				t.Error("the wrapped handler ran for a rejected request")
			}
			want := tt.challenge
			if want == "" {
				want = `Bearer error="invalid_token"`
			}
			if got := res.Header.Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate = %q; want %q", got, want)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", got)
			}
			var msg struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &msg); err != nil || msg.Error != "invalid_token" {
				t.Errorf("body %s; want JSON with error invalid_token", body)
			}
			firstBody.CompareAndSwap(nil, string(body))
			if len(body) > 512 || firstBody.Load() != string(body) {
				t.Errorf("body %s; want the same small body for every failure, %s", body, firstBody.Load())
			}
		})
	}
}

func TestMiddlewareJWKSUnavailable(t *testing.T) {
	e := newVerifyEnv(t)
	jwks := serveCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: jwks.URL, Now: e.clk.Now})
	var called atomic.Bool
	app := serveCounting(t, v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) })))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, app.URL, nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, e.minter, "", testAudience, fullIdentity()).Raw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || called.Load() {
		t.Errorf("status %d, handler called %v; want 503 and the handler not called", res.StatusCode, called.Load())
	}
	if !strings.Contains(string(body), "temporarily_unavailable") {
		t.Errorf("body %s; want a temporarily_unavailable JSON error", body)
	}
}

func TestClaimsFromContextWithoutMiddleware(t *testing.T) {
	if c, ok := tokenmint.ClaimsFromContext(t.Context()); ok || c != nil {
		t.Errorf("ClaimsFromContext(empty) = %v, %v; want nil, false", c, ok)
	}
}
