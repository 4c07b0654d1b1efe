// Package demo runs the self-contained `gatehouse demo`: a development OpenID
// provider, an echo upstream and Gatehouse in one process on 127.0.0.1.
package demo

import (
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// Echo is the demo upstream: it shows what Gatehouse handed it (identity
// headers, the minted token's claims, and whether the token verified against
// Gatehouse's JWKS). With Accept: application/json it answers in JSON.
type Echo struct {
	Verifier *tokenmint.Verifier
}

// Received is what the echo upstream reports about one request.
type Received struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Headers  map[string]string `json:"headers"`
	Claims   map[string]any    `json:"claims,omitempty"`
	Verified bool              `json:"verified"`
	Error    string            `json:"error,omitempty"`
}

func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Received{Method: r.Method, Path: r.URL.Path, Headers: map[string]string{}}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Auth-Request-") || strings.HasPrefix(k, "X-Forwarded-") || k == "Authorization" || k == "Cookie" {
			rec.Headers[k] = strings.Join(v, ", ")
		}
	}
	if raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		rec.Claims = decodeClaims(raw)
		if e.Verifier != nil {
			if _, err := e.Verifier.Verify(r.Context(), raw); err != nil {
				rec.Error = err.Error()
			} else {
				rec.Verified = true
			}
		}
		rec.Headers["Authorization"] = "Bearer " + abbreviate(raw)
	} else {
		rec.Error = "no bearer token: this request did not come through Gatehouse"
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rec)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = echoPage.Execute(w, view(rec))
}

// decodeClaims shows a token's payload without trusting it (the page says
// separately whether it verified).
func decodeClaims(raw string) map[string]any {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func abbreviate(tok string) string {
	if len(tok) <= 24 {
		return tok
	}
	return tok[:12] + "…" + tok[len(tok)-8:]
}

type kv struct{ K, V string }

type pageView struct {
	Received
	HeaderList []kv
	ClaimList  []kv
}

func view(rec Received) pageView {
	v := pageView{Received: rec}
	for k, val := range rec.Headers {
		v.HeaderList = append(v.HeaderList, kv{k, val})
	}
	sort.Slice(v.HeaderList, func(i, j int) bool { return v.HeaderList[i].K < v.HeaderList[j].K })
	for k, val := range rec.Claims {
		b, _ := json.Marshal(val)
		v.ClaimList = append(v.ClaimList, kv{k, string(b)})
	}
	sort.Slice(v.ClaimList, func(i, j int) bool { return v.ClaimList[i].K < v.ClaimList[j].K })
	return v
}

var echoPage = template.Must(template.New("echo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Gatehouse demo upstream</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}td{border-bottom:1px solid #ddd;padding:.3rem .5rem;vertical-align:top;font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}
td:first-child{white-space:nowrap;color:#555}.ok{color:#17692b;font-weight:600}.bad{color:#a11;font-weight:600}</style></head>
<body>
<h1>Demo upstream</h1>
<p>This page is served by an upstream application behind Gatehouse. It never saw your session cookie; Gatehouse sent it a short-lived signed token instead.</p>
<p>Token: {{if .Verified}}<span class="ok" id="verified">verified against Gatehouse's JWKS</span>{{else}}<span class="bad" id="verified">not verified: {{.Error}}</span>{{end}}</p>
<h2>Headers received</h2>
<table>{{range .HeaderList}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>{{end}}</table>
<h2>Token claims</h2>
<table>{{range .ClaimList}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>{{end}}</table>
<p>{{.Method}} {{.Path}} · <a href="/oauth2/userinfo">/oauth2/userinfo</a> · <a href="/oauth2/jwks.json">/oauth2/jwks.json</a> · <a href="/oauth2/sign_out">Sign out</a></p>
</body></html>
`))
