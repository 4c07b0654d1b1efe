package proxy

import (
	"net/url"
	"testing"
)

func TestRoutePrefixWithoutTrailingSlash(t *testing.T) {
	routes := []*Route{
		{Name: "admin", PathPrefix: "/admin/"},
		{Name: "api", PathPrefix: "/api"},
		{Name: "home", PathPrefix: "/", Public: true},
	}
	tests := []struct{ path, want string }{
		{"/admin/", "admin"},
		{"/admin/x", "admin"},
		// An upstream serves "/admin" as "/admin/" (or redirects there):
		// it must not fall through to the public catch-all.
		{"/admin", "admin"},
		{"/adminx", "home"},
		{"/admin.json", "home"},
		{"/api", "api"},
		{"/api/", "api"},
		{"/api/x", "api"},
		{"/apix", "home"},
		{"/", "home"},
	}
	for _, tt := range tests {
		if got := match(routes, "app", tt.path); got == nil || got.Name != tt.want {
			t.Errorf("match(%q) = %v; want %s", tt.path, got, tt.want)
		}
	}
}

func TestRouteCaseInsensitive(t *testing.T) {
	routes := []*Route{
		{Name: "admin", PathPrefix: "/admin/", CaseInsensitive: true},
		{Name: "Reports", PathPrefix: "/Reports", CaseInsensitive: true},
		{Name: "cs", PathPrefix: "/cs/"},
		{Name: "home", PathPrefix: "/", Public: true},
	}
	tests := []struct{ path, want string }{
		{"/admin/x", "admin"},
		{"/ADMIN/x", "admin"},
		{"/Admin", "admin"},
		{"/aDmIn/", "admin"},
		// What Java's equalsIgnoreCase and Windows' upcase table equate
		// with 'i', and the Kelvin sign with 'k'.
		{"/adm\u0131n/x", "admin"}, // dotless ı
		{"/ADM\u0130N/x", "admin"}, // dotted İ
		{"/reports", "Reports"},
		{"/REPORTS/2024", "Reports"},
		{"/reportsx", "home"},
		{"/admins/x", "home"},
		{"/cs/x", "cs"},
		{"/CS/x", "home"},
	}
	for _, tt := range tests {
		if got := match(routes, "app", tt.path); got == nil || got.Name != tt.want {
			t.Errorf("match(%q) = %v; want %s", tt.path, got, tt.want)
		}
	}
	k := &Route{Name: "kube", PathPrefix: "/kube/", CaseInsensitive: true}
	if !k.matches("app", "/\u212aube/") { // KELVIN SIGN
		t.Errorf("%q does not match /kube/ case-insensitively", "/\u212aube/")
	}
}

// TestRouteCaseInsensitiveNeverPublic: a path that a case-insensitive
// protected route matches is never taken by an earlier public route that
// is no more specific, whatever its case.
func TestRouteCaseInsensitiveNeverPublic(t *testing.T) {
	tests := []struct {
		name   string
		routes []*Route
		path   string
		want   string
	}{
		{
			name: "a protected subtree below a public one",
			routes: []*Route{
				{Name: "docs", PathPrefix: "/docs/", Public: true},
				{Name: "internal", PathPrefix: "/docs/internal/", CaseInsensitive: true},
			},
			path: "/docs/internal/x", want: "internal",
		},
		{
			name: "the same subtree in another case",
			routes: []*Route{
				{Name: "docs", PathPrefix: "/Docs/", Public: true},
				{Name: "internal", PathPrefix: "/docs/", CaseInsensitive: true},
			},
			path: "/Docs/x", want: "internal",
		},
		{
			name: "a public case-insensitive route over a protected case-sensitive one",
			routes: []*Route{
				{Name: "static", PathPrefix: "/static/", Public: true, CaseInsensitive: true},
				{Name: "secret", PathPrefix: "/Static/secret/"},
			},
			path: "/STATIC/SECRET/key", want: "secret",
		},
		{
			name: "a public carve-out stays public",
			routes: []*Route{
				{Name: "static", PathPrefix: "/static/", Public: true},
				{Name: "app", PathPrefix: "/", CaseInsensitive: true},
			},
			path: "/static/app.js", want: "static",
		},
		{
			name: "the carve-out in another case is protected",
			routes: []*Route{
				{Name: "static", PathPrefix: "/static/", Public: true},
				{Name: "app", PathPrefix: "/", CaseInsensitive: true},
			},
			path: "/STATIC/app.js", want: "app",
		},
		{
			name: "a later public route never takes over",
			routes: []*Route{
				{Name: "admin", PathPrefix: "/admin/", CaseInsensitive: true},
				{Name: "help", PathPrefix: "/admin/help/", Public: true, CaseInsensitive: true},
			},
			path: "/admin/help/x", want: "admin",
		},
		{
			name: "another host's route does not",
			routes: []*Route{
				{Name: "docs", PathPrefix: "/docs/", Public: true},
				{Name: "internal", Host: "other.example.com", PathPrefix: "/docs/", CaseInsensitive: true},
			},
			path: "/docs/x", want: "docs",
		},
		{
			name: "without case-insensitive routes, first match wins",
			routes: []*Route{
				{Name: "docs", PathPrefix: "/docs/", Public: true},
				{Name: "internal", PathPrefix: "/docs/internal/"},
			},
			path: "/docs/internal/x", want: "docs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := match(tt.routes, "app.example.com", tt.path); got == nil || got.Name != tt.want {
				t.Errorf("match(%q) = %v; want %s", tt.path, got, tt.want)
			}
		})
	}
}

func TestRouteHost(t *testing.T) {
	routes := []*Route{
		{Name: "exact", Host: "app.example.com", PathPrefix: "/"},
		{Name: "wild", Host: "*.example.com", PathPrefix: "/"},
		{Name: "v6", Host: "::1", PathPrefix: "/"},
	}
	tests := []struct{ hostport, want string }{
		{"app.example.com", "exact"},
		{"APP.example.com:8443", "exact"},
		{"app.example.com.", "exact"},
		{"a.example.com", "wild"},
		{"example.com", ""},
		{"[::1]:4180", "v6"},
		{"[::1]", "v6"},
	}
	for _, tt := range tests {
		got := match(routes, hostOnly(tt.hostport), "/")
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != tt.want {
			t.Errorf("match(%q) = %q; want %q", tt.hostport, name, tt.want)
		}
	}
}

// FuzzRouteMatch checks, for any path and case-insensitive flags, that the
// matched route is never public when a case-insensitive upstream would
// serve the path under a protected route that is at least as specific, and
// that case-sensitive-only configurations keep plain first-match.
func FuzzRouteMatch(f *testing.F) {
	f.Add("/docs/internal/x", uint8(0b0110))
	f.Add("/DOCS/x", uint8(0b1111))
	f.Add("/admin", uint8(0))
	f.Fuzz(func(t *testing.T, raw string, flags uint8) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		p, err := readPath(u)
		if err != nil {
			return
		}
		routes := []*Route{
			{Name: "docs", PathPrefix: "/docs/", Public: true},
			{Name: "internal", PathPrefix: "/docs/internal/"},
			{Name: "Admin", PathPrefix: "/Admin"},
			{Name: "home", PathPrefix: "/", Public: true},
		}
		for i, rt := range routes {
			rt.CaseInsensitive = flags&(1<<i) != 0
		}
		got := match(routes, "app", p.clean)
		if got == nil {
			t.Fatalf("match(%q) = nil; the catch-all matches everything", p.clean)
		}
		if flags&0b1111 == 0 {
			for _, rt := range routes {
				if rt.matches("app", p.clean) {
					if rt != got {
						t.Fatalf("match(%q) = %s; first match is %s", p.clean, got.Name, rt.Name)
					}
					break
				}
			}
			return
		}
		if !got.Public {
			return
		}
		for _, rt := range routes {
			if !rt.Public && (rt.CaseInsensitive || got.CaseInsensitive) &&
				rt.specificity() >= got.specificity() && rt.matchesPath(p.clean, true) {
				t.Fatalf("match(%q) = public %s; protected %s serves it on a case-insensitive upstream", p.clean, got.Name, rt.Name)
			}
		}
	})
}
