package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// decisionLog keeps the decision and reason of each access log line.
type decisionLog struct {
	mu    sync.Mutex
	lines []string
}

func (d *decisionLog) Enabled(context.Context, slog.Level) bool { return true }
func (d *decisionLog) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d *decisionLog) WithGroup(string) slog.Handler            { return d }
func (d *decisionLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request" {
		return nil
	}
	var dec, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "decision":
			dec = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	})
	d.mu.Lock()
	d.lines = append(d.lines, dec+"/"+reason)
	d.mu.Unlock()
	return nil
}

func (d *decisionLog) last() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.lines) == 0 {
		return ""
	}
	return d.lines[len(d.lines)-1]
}

// TestOneDecisionForEveryFrontEnd asks the same questions through the
// reverse proxy, /oauth2/auth and /oauth2/auth/<path>: each front end must
// reach the same decision for the same reason, log it and count it.
func TestOneDecisionForEveryFrontEnd(t *testing.T) {
	f := newAuthFixture(t)
	log := &decisionLog{}
	reg := prometheus.NewRegistry()
	f.srv.log, f.srv.cfg.AccessLog, f.srv.cfg.Metrics = slog.New(log), true, NewMetrics(reg)

	tests := []struct {
		method, path, user, origin string
		want                       string // decision/reason
	}{
		{"GET", "/public/x", "", "", "allow/public"},
		{"GET", "/x", "", "", "unauthenticated/no_session"},
		{"GET", "/x", "bob", "", "allow/session"},
		{"GET", "/admin/x", "bob", "", "forbidden/route_groups"},
		{"GET", "/admin/x", "alice", "", "allow/session"},
		{"GET", "/x", "mallory", "", "forbidden/email_domain"},
		{"POST", "/x", "alice", "https://evil.test", "cross_origin/cross_origin"},
		{"POST", "/x", "alice", "https://app.example.com", "allow/session"},
		{"GET", "/public/../admin/x", "", "", "unauthenticated/no_session"},
		{"GET", "/public/%2e%2e/admin/x", "bob", "", "forbidden/route_groups"},
		{"GET", "/public/%0a", "", "", "bad_request/bad_path"},
	}
	type frontEnd struct {
		name string
		req  func(method, path string) *http.Request
	}
	fronts := []frontEnd{
		{"proxy", func(m, p string) *http.Request {
			r := httptest.NewRequest(m, "http://app.example.com"+p, nil)
			r.RemoteAddr = untrustedAddr
			return r
		}},
		{"auth", func(m, p string) *http.Request {
			r := httptest.NewRequest("GET", "http://gatehouse.internal/oauth2/auth", nil)
			r.RemoteAddr = trustedAddr
			r.Header.Set("X-Original-Url", "http://app.example.com"+p)
			r.Header.Set("X-Original-Method", m)
			return r
		}},
		{"envoy", func(m, p string) *http.Request {
			r := httptest.NewRequest(m, "http://app.example.com/oauth2/auth"+p, nil)
			r.RemoteAddr = trustedAddr
			return r
		}},
	}
	for _, tt := range tests {
		for _, fe := range fronts {
			r := fe.req(tt.method, tt.path)
			r.Header.Set("Accept", "application/json")
			if tt.user != "" {
				r.Header.Set("Cookie", "gatehouse="+f.cookies[tt.user])
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			f.srv.ServeHTTP(httptest.NewRecorder(), r)
			if got := log.last(); got != tt.want {
				t.Errorf("%s %s %s as %q: decided %q; want %q", fe.name, tt.method, tt.path, tt.user, got, tt.want)
			}
		}
	}
	if n := counterValue(t, reg, "gatehouse_authz_decisions_total", "forbidden", "route_groups", "admin"); n != 3*2 {
		t.Errorf("gatehouse_authz_decisions_total{route=admin,forbidden,route_groups} = %v; want 6 (two questions, three front ends)", n)
	}
}

func TestCrossSite(t *testing.T) {
	f := newAuthFixture(t)
	for _, tt := range []struct {
		name, method, host string
		h                  map[string]string
		want               bool
	}{
		{"GET with a foreign Origin is a read", "GET", "app.example.com", map[string]string{"Origin": "https://evil.test"}, false},
		{"POST, foreign Origin", "POST", "app.example.com", map[string]string{"Origin": "https://evil.test"}, true},
		{"POST, own host", "POST", "other.example.com", map[string]string{"Origin": "https://other.example.com"}, false},
		{"POST, public_url written otherwise is the same origin", "POST", "", map[string]string{"Origin": "https://app.example.com"}, false},
		{"POST, same-site is not same-origin", "POST", "app.example.com", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://x.example.com"}, true},
		{"POST, no Origin, no fetch metadata", "POST", "app.example.com", nil, false},
		{"unknown method, foreign Origin", "", "app.example.com", map[string]string{"Origin": "https://evil.test"}, true},
		{"unknown method, no Origin", "", "app.example.com", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"WebSocket GET, foreign Origin", "GET", "app.example.com", map[string]string{"Sec-Websocket-Key": "k", "Origin": "https://evil.test"}, true},
		{"WebSocket by fetch metadata", "GET", "app.example.com", map[string]string{"Sec-Fetch-Mode": "websocket", "Sec-Fetch-Site": "cross-site"}, true},
	} {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		if got := f.srv.crossSite(tt.method, tt.host, h); got != tt.want {
			t.Errorf("%s: crossSite = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://App.Example.com:443/": "https://app.example.com",
		"http://app.example.com:80":    "http://app.example.com",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"HTTP://[::1]:8080":            "http://[::1]:8080",
	} {
		if got, err := normalizeOrigin(in); err != nil || got != want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"app.example.com", "ftp://a", "https://a/path"} {
		if _, err := normalizeOrigin(bad); err == nil {
			t.Errorf("normalizeOrigin(%q) accepted", bad)
		}
	}
}

// counterValue reads one series of a counter vector from reg, by its label
// values in the order of their label names (decision, reason, route).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, values ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(values) || lp.GetValue() != values[i] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
