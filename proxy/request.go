package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"
)

// reqState is per-request bookkeeping: what the entry learned before
// stripping the request, what the decision said, and what the Rewrite hook
// sets on the upstream request.
type reqState struct {
	id            string
	route         string
	user          string
	bearer        string // the client's bearer token, if any (never logged)
	bearerPresent bool
	trusted       bool // the peer is in trusted_proxies
	decision      outcome
	reason        string   // "" when no decision was made (Gatehouse's own endpoints)
	fw            *forward // what Rewrite sets on the upstream request
	// respHeader is the response's header, for a session cookie re-issued
	// under the newest secret while the request is being judged.
	respHeader http.Header
}

type reqStateKey struct{}

// stateOf returns r's state. Requests that did not come through ServeHTTP
// (unit tests of a handler) get a fresh, detached one.
func stateOf(r *http.Request) *reqState {
	if rs, ok := r.Context().Value(reqStateKey{}).(*reqState); ok {
		return rs
	}
	return &reqState{route: "none"}
}

func withState(r *http.Request, rs *reqState) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), reqStateKey{}, rs))
}

func requestID(r *http.Request) string { return stateOf(r).id }

// validRequestID accepts a proxy's request id of up to 128 characters of
// [A-Za-z0-9._:-]: anything else could forge log lines or fields.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// userHash is the access log's user field: a stable pseudonym of the
// subject (the same user, the same value, on every replica), never an email
// or the subject itself. "" when there is no user.
func userHash(sub string) string {
	if sub == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("gatehouse-user\x00" + sub))
	return hex.EncodeToString(sum[:8])
}

// clientIP is the client's address: the peer's, or, from a trusted proxy,
// the nearest address in X-Forwarded-For that is not itself a trusted proxy.
func (s *Server) clientIP(r *http.Request, trusted bool) string {
	peer := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		peer = ap.Addr().Unmap().String()
	}
	if !trusted {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			ip, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer // a hop we cannot read: stop at what we know
			}
			if !s.trustedAddr(ip.Unmap()) {
				return ip.Unmap().String()
			}
		}
	}
	return peer
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// forward is what the Rewrite hook sets on the upstream request: the path
// the decision was made on, and the identity when there is one.
type forward struct {
	path                                          string
	authenticated                                 bool
	token, user, email, groups, preferredUsername string
}

// isNavigation tells a browser navigation with method (which should see a
// login redirect) from fetch/XHR/API calls (which get 401 JSON). An
// unknown method ("") counts as GET.
func isNavigation(h http.Header, method string) bool {
	if method != "" && method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if m := h.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	if h.Get("X-Requested-With") != "" {
		return false
	}
	return strings.Contains(h.Get("Accept"), "text/html")
}

// showsHTML reports whether the response will be shown to a person as a
// page: a navigation of any method (a form POST too), or a request that
// accepts HTML and is not marked as script-made.
func showsHTML(h http.Header) bool {
	if m := h.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return h.Get("X-Requested-With") == "" && strings.Contains(h.Get("Accept"), "text/html")
}

// statusWriter records the status code. Unwrap lets http.ResponseController
// reach Flush and Hijack (SSE and WebSocket upgrades).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}
