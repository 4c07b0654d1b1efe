package proxy

import (
	"net/http"
	"strings"
)

// Identity headers Gatehouse sets. Client-supplied copies of any of these, in
// any case and with '_' for '-', are removed from every request.
const (
	hdrUser              = "X-Auth-Request-User"
	hdrEmail             = "X-Auth-Request-Email"
	hdrGroups            = "X-Auth-Request-Groups"
	hdrPreferredUsername = "X-Auth-Request-Preferred-Username"
	hdrAccessToken       = "X-Auth-Request-Access-Token"
)

// spoofable lists, in normalized form (lower case, '-' only), every header an
// upstream might take as identity: ours, oauth2-proxy's and common ingress ones.
var spoofable = map[string]bool{
	"x-auth-request-user":               true,
	"x-auth-request-email":              true,
	"x-auth-request-groups":             true,
	"x-auth-request-preferred-username": true,
	"x-auth-request-access-token":       true,
	"x-forwarded-user":                  true,
	"x-forwarded-email":                 true,
	"x-forwarded-groups":                true,
	"x-forwarded-preferred-username":    true,
	"x-forwarded-access-token":          true,
	"x-remote-user":                     true,
	"remote-user":                       true,
	"x-auth-user":                       true,
}

// normHeader folds a header name for comparison: lower case, '_' as '-'.
func normHeader(k string) string {
	b := []byte(nil)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		default:
			if b == nil {
				continue
			}
		}
		if b == nil {
			b = []byte(k)
		}
		b[i] = c
	}
	if b == nil {
		return k
	}
	return string(b)
}

// stripIdentity deletes every client-supplied identity header from h,
// including the configured token header (normalized name tokenHeader).
func stripIdentity(h http.Header, tokenHeader string) {
	for k := range h {
		n := normHeader(k)
		if spoofable[n] || n == tokenHeader {
			delete(h, k)
		}
	}
}

// stripCookies removes Gatehouse's own cookies (the session cookie and the
// login-flow cookies) from the Cookie header so upstreams never see them.
func stripCookies(h http.Header, isOurs func(name string) bool) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			if isOurs(strings.TrimSpace(name)) {
				changed = true
				continue
			}
			kept = append(kept, p)
		}
	}
	if !changed && len(lines) == 1 {
		return
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", strings.Join(kept, "; "))
}
