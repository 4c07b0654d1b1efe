package proxy

import (
	"net"
	"net/http/httputil"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Route sends the requests it matches to one upstream.
type Route struct {
	Name string
	Host string // "" = any host; "*.example.com" = any subdomain
	// PathPrefix: "/api/" matches "/api" and below "/api/" (an upstream
	// serves "/api" as "/api/", or redirects there); "/api" matches "/api"
	// and below "/api/", not "/apix".
	PathPrefix string
	// CaseInsensitive: the upstream serves "/ADMIN" as "/admin", so the
	// prefix matches in any case, and a path that any protected route
	// matches in any case is not given to a less specific route (see match).
	CaseInsensitive bool
	Upstream        *url.URL
	Audience        string // the minted token's aud
	Public          bool   // no login required; identity headers are still stripped
	// AllowedGroups: if not empty, the user needs one of them (else 403).
	AllowedGroups []string
	// Groups: if not empty, only these groups reach the token and headers.
	Groups []string
	// Claims maps extra minted claim names to provider claim names.
	Claims map[string]string

	proxy *httputil.ReverseProxy
	self  []*Route // []*Route{rt}: a decision's scope without an allocation
}

// matches reports whether rt takes a request for host (lowercase, no
// port) and path (clean), in the route's own case mode.
func (rt *Route) matches(host, path string) bool {
	return rt.matchesHost(host) && rt.matchesPath(path, rt.CaseInsensitive)
}

func (rt *Route) matchesHost(host string) bool {
	if rt.Host == "" {
		return true
	}
	if suffix, ok := strings.CutPrefix(rt.Host, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == rt.Host
}

// matchesPath matches path against the prefix, case-insensitively if fold.
func (rt *Route) matchesPath(path string, fold bool) bool {
	p := rt.PathPrefix
	if p == "" || p == "/" {
		return true
	}
	// "/x/" and "/x" both match "/x" and everything below "/x/".
	p = strings.TrimSuffix(p, "/")
	if !fold {
		return strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/')
	}
	rest, ok := cutPrefix(path, p, fold)
	return ok && (rest == "" || rest[0] == '/')
}

// specificity is how much of a path the prefix pins down, in runes:
// of two prefixes that match one path, the longer lies below the other.
func (rt *Route) specificity() int {
	return utf8.RuneCountInString(strings.TrimSuffix(rt.PathPrefix, "/"))
}

// match returns the route that takes a request for host and path (clean),
// or nil: the first route that matches, unless another route that is not
// public, is at least as specific, and matches case-insensitively, where
// either of the two routes is case-insensitive; then the first such route.
//
// Why: a case-insensitive upstream serves "/Admin/x" as "/admin/x". With
// routes [{/docs/ public}, {/docs/internal/ protected, case_insensitive}],
// first-match alone would make "/docs/internal/x" public while the
// upstream serves the protected resource; with [{/Admin protected},
// {/ public, case_insensitive}], "/admin" would be public. Moving a request
// only ever to a non-public route, and only to one that lies at or below
// the first route's prefix, can never make a protected resource public,
// and keeps a public carve-out such as [{/static/ public}, {/ protected,
// case_insensitive}] public. Without case-insensitive routes, match is
// plain first-match.
func match(routes []*Route, host, path string) *Route {
	for _, rt := range routes {
		if !rt.matches(host, path) {
			continue
		}
		for _, other := range routes {
			if !(other.CaseInsensitive || rt.CaseInsensitive) || other.Public || other == rt {
				continue
			}
			if other.specificity() >= rt.specificity() && other.matchesHost(host) && other.matchesPath(path, true) {
				return other
			}
		}
		return rt
	}
	return nil
}

// cutPrefix is strings.CutPrefix, comparing rune by rune with sameLetter
// when fold is set.
func cutPrefix(s, prefix string, fold bool) (string, bool) {
	if !fold {
		return strings.CutPrefix(s, prefix)
	}
	for prefix != "" {
		if s == "" {
			return "", false
		}
		pr, pn := utf8.DecodeRuneInString(prefix)
		sr, sn := utf8.DecodeRuneInString(s)
		if !sameLetter(pr, sr) {
			return "", false
		}
		prefix, s = prefix[pn:], s[sn:]
	}
	return s, true
}

// sameLetter reports whether some case-insensitive server may take a and
// b for the same character: Go's simple folding (k, K and the Kelvin sign
// K), and the upper- and lower-case mappings that Java's equalsIgnoreCase
// and Windows' upcase table also use, which equate the Turkish dotless ı
// and dotted İ with i. Wider than any one server on purpose: it decides
// which protected route a path may reach.
func sameLetter(a, b rune) bool {
	if a == b {
		return true
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return unicode.ToUpper(a) == unicode.ToUpper(b) || unicode.ToLower(a) == unicode.ToLower(b)
}

// hostOnly lowercases a Host header value and drops its port, a trailing
// dot and an IPv6 literal's brackets, the form Route.Host is compared in.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	} else if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// allowed reports whether the user's groups satisfy a group list (empty = anyone).
func allowed(need, have []string) bool {
	if len(need) == 0 {
		return true
	}
	for _, n := range need {
		for _, h := range have {
			if n == h {
				return true
			}
		}
	}
	return false
}

// filterGroups keeps only the groups named in keep (empty keep = all).
func filterGroups(groups, keep []string) []string {
	if len(keep) == 0 {
		return groups
	}
	var out []string
	for _, g := range groups {
		for _, k := range keep {
			if g == k {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
