package proxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// This file renders verdicts: the reverse proxy's answers and the
// forward-auth answers, and the small error pages and JSON bodies both use.

// renderProxy answers a proxied request as its verdict says: allowed
// requests go to the route's upstream with exactly the path decided on.
func (s *Server) renderProxy(w http.ResponseWriter, r *http.Request, q *query, v verdict) {
	switch v.outcome {
	case allow:
		fw := v.fw
		if fw == nil {
			fw = &forward{}
		}
		fw.path = q.path.clean
		stateOf(r).fw = fw
		if err := bufferBody(r); err != nil {
			s.log.Info("request body not received", "request_id", requestID(r), "err", err)
			s.fail(w, r, http.StatusBadRequest, "The request body could not be read.")
			return
		}
		v.route.proxy.ServeHTTP(w, r)
	case unauthenticated:
		s.clearDeadCookie(w, r)
		if isNavigation(r.Header, r.Method) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, s.prefix+"/start?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		s.signInRequired(w)
	case invalidToken:
		invalidBearer(w)
	case forbidden:
		s.fail(w, r, http.StatusForbidden, "You are signed in but not allowed here ("+v.reason+").")
	case crossSite:
		s.fail(w, r, http.StatusForbidden, "Cross-origin request refused.")
	case unavailable:
		s.log.Error("cannot authenticate: dependency unavailable", "request_id", requestID(r), "reason", v.reason, "err", v.err)
		s.fail(w, r, http.StatusServiceUnavailable, "Authentication is temporarily unavailable; try again shortly.")
	case badRequest, untrustedPeer:
		s.fail(w, r, http.StatusBadRequest, "Bad request: invalid path.")
	case noRoute:
		s.fail(w, r, http.StatusNotFound, "No route for this request.")
	default:
		s.log.Error("authorizing request", "request_id", requestID(r), "reason", v.reason, "err", v.err)
		s.fail(w, r, http.StatusInternalServerError, "Internal error.")
	}
}

// renderAuth answers a forward-auth check as its verdict says, with yes as
// the status of a yes. Anything but a clear yes is a refusal: 401 (or, in
// redirect mode, a login redirect for browser navigations), 403 for a
// signed-in user the policy refuses, 503 when a dependency cannot answer.
func (s *Server) renderAuth(w http.ResponseWriter, r *http.Request, q *query, v verdict, redirectMode bool, yes int) {
	switch v.outcome {
	case allow:
		if v.fw != nil {
			s.setIdentity(w.Header(), v.fw)
		}
		w.WriteHeader(yes)
	case unauthenticated:
		if redirectMode && isNavigation(r.Header, q.method) {
			s.redirectToLogin(w, r, q)
			return
		}
		s.signInRequired(w)
	case invalidToken:
		invalidBearer(w)
	case forbidden:
		writeJSONError(w, http.StatusForbidden, "forbidden", "You are signed in but not allowed here ("+v.reason+").")
	case crossSite:
		writeJSONError(w, http.StatusForbidden, "forbidden", "Cross-origin request refused.")
	case unavailable:
		s.log.Error("forward-auth: cannot authenticate: dependency unavailable", "request_id", requestID(r), "reason", v.reason, "err", v.err)
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "Authentication is temporarily unavailable; try again shortly.")
	case untrustedPeer:
		s.warnUntrusted(r)
		writeJSONError(w, http.StatusForbidden, "untrusted_peer",
			"Original-request headers (X-Original-URL, X-Forwarded-Uri, ...) are only believed from trusted_proxies; this peer is not one.")
	case badRequest:
		s.log.Info("forward-auth: malformed original request", "request_id", requestID(r), "reason", v.reason)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Malformed original request.")
	case noRoute:
		if v.who != nil {
			writeJSONError(w, http.StatusForbidden, "forbidden", "No route for the original request.")
			return
		}
		if redirectMode && isNavigation(r.Header, q.method) {
			s.redirectToLogin(w, r, q)
			return
		}
		s.signInRequired(w)
	default:
		s.log.Error("forward-auth: authorizing request", "request_id", requestID(r), "reason", v.reason, "err", v.err)
		writeJSONError(w, http.StatusInternalServerError, "error", "Internal error.")
	}
}

// signInRequired is the 401 for API clients: JSON and WWW-Authenticate,
// never an HTML login page.
func (s *Server) signInRequired(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
	writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Sign in at "+s.prefix+"/start.")
}

// clearDeadCookie stops the browser sending a session cookie that did not
// lead to a session.
func (s *Server) clearDeadCookie(w http.ResponseWriter, r *http.Request) {
	if len(r.CookiesNamed(s.cookieName)) > 0 {
		http.SetCookie(w, s.sessionCookie(""))
	}
}

// redirectToLogin sends the browser to Gatehouse's login with the original
// URL as rd, validated exactly like a user-supplied rd (else dropped).
func (s *Server) redirectToLogin(w http.ResponseWriter, r *http.Request, q *query) {
	start := strings.TrimSuffix(s.cfg.PublicURL.String(), "/") + s.prefix + "/start"
	if u, err := url.Parse(q.target); err == nil && s.otherHost(q.hostport) {
		// Another host signs in through its own /start (docs/multi-host.md).
		start = u.Scheme + "://" + q.hostport + s.prefix + "/start"
	}
	if q.target != "" {
		if rd, err := s.cfg.Login.Redirects.Check(q.target); err == nil {
			start += "?rd=" + url.QueryEscape(rd)
		}
	}
	http.Redirect(w, r, start, http.StatusFound)
}

// invalidBearer answers a refused bearer token (RFC 6750 §3).
func invalidBearer(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
	writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The bearer token is invalid, expired, or not meant for this service.")
}

// fail writes a small error: JSON for API clients, a short HTML page for
// what a person will see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if !showsHTML(r.Header) {
		writeJSONError(w, code, errorCode(code), msg)
		return
	}
	s.page(w, code, http.StatusText(code), msg, "")
}

func errorCode(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadGateway:
		return "bad_gateway"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "gateway_timeout"
	}
	return "error"
}

func writeJSONError(w http.ResponseWriter, code int, short, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{short, msg})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} · Gatehouse</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:12vh auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}a{color:#0b5cad}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Link}}<p><a href="{{.Link}}">Sign in again</a></p>{{end}}</body></html>
`))

// page writes a small HTML page. link, if set, is a Gatehouse-relative URL.
func (s *Server) page(w http.ResponseWriter, code int, title, msg, link string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(code)
	_ = pageTmpl.Execute(w, struct{ Title, Message, Link string }{title, msg, link})
}
