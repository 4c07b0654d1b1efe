package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
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
