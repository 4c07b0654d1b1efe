package proxy

import (
	"net"
	"net/http/httputil"
	"net/url"
	"strings"
)

// Route sends the requests it matches to one upstream.
type Route struct {
	Name       string
	Host       string // "" = any host; "*.example.com" = any subdomain
	PathPrefix string // "/api/" matches below it; "/api" matches "/api" and below "/api/"
	Upstream   *url.URL
	Audience   string // the minted token's aud
	Public     bool   // no login required; identity headers are still stripped
	// AllowedGroups: if not empty, the user needs one of them (else 403).
	AllowedGroups []string
	// Groups: if not empty, only these groups reach the token and headers.
	Groups []string
	// Claims maps extra minted claim names to provider claim names.
	Claims map[string]string

	proxy *httputil.ReverseProxy
}

func (rt *Route) matches(host, path string) bool {
	if rt.Host != "" {
		if suffix, ok := strings.CutPrefix(rt.Host, "*"); ok {
			if !strings.HasSuffix(host, suffix) || len(host) == len(suffix) {
				return false
			}
		} else if host != rt.Host {
			return false
		}
	}
	p := rt.PathPrefix
	if p == "" || p == "/" {
		return true
	}
	if strings.HasSuffix(p, "/") {
		return strings.HasPrefix(path, p)
	}
	return path == p || (strings.HasPrefix(path, p) && path[len(p)] == '/')
}

// match returns the first route that matches, or nil.
func match(routes []*Route, host, path string) *Route {
	for _, rt := range routes {
		if rt.matches(host, path) {
			return rt
		}
	}
	return nil
}

// hostOnly lowercases a Host header value and drops its port.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
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
