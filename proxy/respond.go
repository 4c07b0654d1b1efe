package proxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// wantsHTML tells a browser navigation (which should see a login redirect or
// an HTML page) from fetch/XHR/API calls (which get JSON).
func wantsHTML(r *http.Request) bool { return wantsHTMLMethod(r, r.Method) }

// unauthenticated answers a request that needs a session and has none.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(s.cookieName); err == nil {
		// A cookie that did not lead to a session: stop the browser sending it.
		http.SetCookie(w, s.sessionCookie(""))
	}
	if wantsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, s.prefix+"/start?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
	writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Sign in at "+s.prefix+"/start.")
}

// showsHTML reports whether the response will be shown to a person as a
// page: a navigation of any method (a form POST too), or a request that
// accepts HTML and is not marked as script-made.
func showsHTML(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return r.Header.Get("X-Requested-With") == "" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// fail writes a small error: JSON for API clients, a short HTML page for
// what a person will see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if !showsHTML(r) {
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
