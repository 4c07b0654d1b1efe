package proxy

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

// TestTracing: a span per request with children for the session store and
// minting; a trusted proxy's trace is continued and passed on, a
// stranger's is not.
func TestTracing(t *testing.T) {
	for _, tt := range []struct {
		name         string
		trusted      bool
		wantContinue bool
	}{
		{"trusted proxy's trace continues", true, true},
		{"a stranger's traceparent starts nothing", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := tracetest.NewSpanRecorder()
			f.srv.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
			f.srv.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
			req.RemoteAddr = "198.51.100.9:1000"
			if tt.trusted {
				req.RemoteAddr = "192.0.2.1:1000"
			}
			req.Header.Set("Traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
			req.Header.Set("Cookie", "gatehouse="+f.plant(t))
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("got %d", w.Code)
			}
			spans := rec.Ended()
			names := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range spans {
				names[s.Name()] = s
			}
			server, ok := names["gatehouse app"]
			if !ok || names["session.load"] == nil || names["token.mint"] == nil {
				t.Fatalf("spans %v; want gatehouse app, session.load, token.mint", keys(names))
			}
			for _, child := range []string{"session.load", "token.mint"} {
				if names[child].Parent().SpanID() != server.SpanContext().SpanID() {
					t.Errorf("%s is not a child of the request span", child)
				}
			}
			continued := server.SpanContext().TraceID().String() == callerTrace
			if continued != tt.wantContinue {
				t.Errorf("trace continued = %v; want %v", continued, tt.wantContinue)
			}
			up := f.header.Get("Traceparent")
			if !strings.Contains(up, server.SpanContext().TraceID().String()) || !strings.Contains(up, server.SpanContext().SpanID().String()) {
				t.Errorf("upstream traceparent %q; want the request span's", up)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTraceContextWithoutTracing: with tracing off, a trusted proxy's
// trace context still reaches the upstream and a stranger's does not.
func TestTraceContextWithoutTracing(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cookie := f.plant(t)
	for _, tt := range []struct {
		peer string
		want bool
	}{{"192.0.2.1:1000", true}, {"198.51.100.9:1000", false}} {
		req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
		req.RemoteAddr = tt.peer
		req.Header.Set("Traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
		req.Header.Set("Cookie", "gatehouse="+cookie)
		f.srv.ServeHTTP(httptest.NewRecorder(), req)
		if got := f.header.Get("Traceparent") != ""; got != tt.want {
			t.Errorf("peer %s: traceparent passed = %v; want %v", tt.peer, got, tt.want)
		}
	}
}

// TestAccessLogFields: a trusted proxy's request id is kept and its client
// address believed; the user is a stable pseudonym, never the subject; the
// duration is in milliseconds.
func TestAccessLogFields(t *testing.T) {
	f := newFixture(t, nil)
	var buf bytes.Buffer
	f.srv.log, f.srv.cfg.AccessLog = slog.New(slog.NewTextHandler(&buf, nil)), true
	f.srv.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cookie := f.plant(t)
	for _, tt := range []struct {
		peer, id, xff    string
		wantID, wantAddr string
	}{
		{"192.0.2.1:1000", "ingress-abc-123", "203.0.113.7, 192.0.2.9", "request_id=ingress-abc-123", "client=203.0.113.7"},
		{"198.51.100.9:1000", "forged-id", "203.0.113.7", "", "client=198.51.100.9"},
		{"192.0.2.1:1000", "bad id\nwith=fields", "", "", "client=192.0.2.1"},
	} {
		buf.Reset()
		req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
		req.RemoteAddr = tt.peer
		req.Header.Set("X-Request-Id", tt.id)
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		req.Header.Set("Cookie", "gatehouse="+cookie)
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, req)
		line := buf.String()
		if tt.wantID != "" && !strings.Contains(line, tt.wantID) {
			t.Errorf("peer %s: %q; want %s", tt.peer, line, tt.wantID)
		}
		if tt.wantID == "" && (strings.Contains(line, "forged-id") || w.Header().Get("X-Request-Id") == tt.id) {
			t.Errorf("peer %s: an untrusted or malformed request id was kept: %q", tt.peer, line)
		}
		if !strings.Contains(line, tt.wantAddr) {
			t.Errorf("peer %s: %q; want %s", tt.peer, line, tt.wantAddr)
		}
		if !strings.Contains(line, "user="+userHash("u1")) || strings.Contains(line, "u1@example.com") || strings.Contains(line, "user=u1 ") {
			t.Errorf("user field: %q; want the pseudonym %s", line, userHash("u1"))
		}
		if !strings.Contains(line, "duration_ms=") {
			t.Errorf("no duration_ms: %q", line)
		}
	}
}
