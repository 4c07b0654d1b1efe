package proxy

import (
	"bytes"
	"net/http"
	"strings"
)

// Identity headers Gatehouse sets.
const (
	hdrUser              = "X-Auth-Request-User"
	hdrEmail             = "X-Auth-Request-Email"
	hdrGroups            = "X-Auth-Request-Groups"
	hdrPreferredUsername = "X-Auth-Request-Preferred-Username"
)

// headerClass is what a request header is to Gatehouse. Names are compared
// folded (lower case, '_' as '-'), since servers and frameworks differ on
// both: a client's X_Auth_Request_User is X-Auth-Request-User to some.
type headerClass uint8

const (
	plainHeader headerClass = iota
	// identityHeader: a header an upstream may take as who the user is.
	// Every client-supplied one is removed on every request; only
	// Gatehouse sets them, after the decision.
	identityHeader
	// forwardingHeader: where the request came from (Forwarded,
	// X-Forwarded-*, X-Real-IP, ...). Passed on only from trusted_proxies;
	// Gatehouse writes its own X-Forwarded-For, -Host and -Proto.
	forwardingHeader
	// rewriteHeader: a header some frameworks honour to serve another path
	// or method than the request line's (IIS and old Symfony read
	// X-Original-URL and X-Rewrite-URL). The path decided on is the path
	// forwarded, so these never reach an upstream, whoever sent them: a
	// trusted ingress passes a client's copy through unchanged.
	rewriteHeader
)

// The families. A prefix covers every member, present and future.
var (
	identityPrefixes = []string{"x-auth-request-"}
	identityNames    = map[string]bool{
		"x-forwarded-user": true, "x-forwarded-email": true, "x-forwarded-groups": true,
		"x-forwarded-preferred-username": true, "x-forwarded-access-token": true,
		"x-forwarded-id-token": true, "x-remote-user": true, "remote-user": true,
		"x-remote-email": true, "x-remote-groups": true, "x-auth-user": true,
	}
	rewriteNames = map[string]bool{
		"x-original-url": true, "x-original-uri": true, "x-original-method": true,
		"x-rewrite-url": true, "x-forwarded-uri": true, "x-forwarded-path": true,
		"x-forwarded-method": true,
	}
	forwardingPrefixes = []string{"x-forwarded-"}
	forwardingNames    = map[string]bool{
		"forwarded": true, "x-real-ip": true, "x-client-ip": true, "true-client-ip": true,
		// W3C trace context: a stranger must not join or steer our traces.
		"traceparent": true, "tracestate": true, "baggage": true,
	}
)

// classify returns the class of header name k. tokenHeader is the folded
// name of the header the minted token travels in: an identity header too.
// It does not allocate for names up to 128 bytes.
func classify(k, tokenHeader string) headerClass {
	var buf [128]byte
	var n []byte
	if len(k) <= len(buf) {
		n = buf[:len(k)]
		for i := 0; i < len(k); i++ {
			n[i] = foldByte(k[i])
		}
	} else {
		n = []byte(normHeader(k))
	}
	switch {
	case identityNames[string(n)] || string(n) == tokenHeader || hasAnyPrefix(n, identityPrefixes):
		return identityHeader
	case rewriteNames[string(n)]:
		return rewriteHeader
	case forwardingNames[string(n)] || hasAnyPrefix(n, forwardingPrefixes):
		return forwardingHeader
	}
	return plainHeader
}

func hasAnyPrefix(n []byte, prefixes []string) bool {
	for _, p := range prefixes {
		if len(n) > len(p) && bytes.HasPrefix(n, []byte(p)) {
			return true
		}
	}
	return false
}

func foldByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}

// normHeader folds a header name for comparison: lower case, '_' as '-'.
func normHeader(k string) string {
	b := []byte(k)
	for i := range b {
		b[i] = foldByte(b[i])
	}
	return string(b)
}

// stripIdentity deletes every client-supplied identity header from h, in
// every spelling and however often repeated, including the configured
// token header (folded name tokenHeader).
func stripIdentity(h http.Header, tokenHeader string) {
	for k := range h {
		if classify(k, tokenHeader) == identityHeader {
			delete(h, k)
		}
	}
}

// sanitizeUpstream prepares the headers of an upstream request: identity
// and rewrite headers go whoever sent them; forwarding headers go unless
// the peer is trusted. Gatehouse then sets its own.
func sanitizeUpstream(h http.Header, tokenHeader string, trusted bool) {
	for k := range h {
		switch classify(k, tokenHeader) {
		case identityHeader, rewriteHeader:
			delete(h, k)
		case forwardingHeader:
			if !trusted {
				delete(h, k)
			}
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
