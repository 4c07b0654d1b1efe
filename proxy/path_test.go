package proxy

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		raw  string // as sent on the request line
		want string // "" = rejected
	}{
		{"/", "/"},
		{"/api/items", "/api/items"},
		{"/api/items/", "/api/items/"},
		{"/public/../admin", "/admin"},
		{"/public/%2e%2e/admin", "/admin"},
		{"/public%2F..%2Fadmin", "/admin"},
		{"/public/./x", "/public/x"},
		{"//admin", "/admin"},
		{"/a//b/", "/a/b/"},
		{"/../../etc/passwd", "/etc/passwd"},
		{"/public/..", "/"},
		{"/a%5c..%5cadmin", ""},
		{"/a\\b", ""},
		{"/a%00b", ""},
		{"/a%0ab", ""},
		{"/a%09b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := normalizePath(u.Path)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("normalizePath(%q) = %q; want rejection", tt.raw, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("normalizePath(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestRouteMatchOnNormalizedPath(t *testing.T) {
	routes := []*Route{
		{Name: "public", PathPrefix: "/public/", Public: true},
		{Name: "api", PathPrefix: "/api"},
		{Name: "host", Host: "*.example.com", PathPrefix: "/"},
		{Name: "rest", PathPrefix: "/"},
	}
	tests := []struct{ host, raw, want string }{
		{"app", "/public/x", "public"},
		{"app", "/public/../admin", "rest"},
		{"app", "/public%2F..%2Fadmin", "rest"},
		{"app", "/api", "api"},
		{"app", "/api/x", "api"},
		{"app", "/apix", "rest"},
		{"app", "/api/private?x=/public/", "api"},
		{"a.example.com", "/z", "host"},
		{"example.com", "/z", "rest"},
	}
	for _, tt := range tests {
		u, _ := url.ParseRequestURI(tt.raw)
		p, err := normalizePath(u.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got := match(routes, tt.host, p); got == nil || got.Name != tt.want {
			t.Errorf("match(%q, %q) = %v; want %s", tt.host, tt.raw, got, tt.want)
		}
	}
}

// FuzzNormalizePath checks the properties routing relies on: the result is
// absolute, has no dot segments, no empty segments, no backslash or control
// characters, and is a fixed point.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/public/%2e%2e/admin", "//x", "/a/./b/", "/\\x", "/a%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		p, err := normalizePath(u.Path)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "\\\x00\n\r\t") {
			t.Fatalf("normalizePath(%q) = %q", u.Path, p)
		}
		for seg := range strings.SplitSeq(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("dot segment survived: %q -> %q", u.Path, p)
			}
		}
		if again, err := normalizePath(p); err != nil || again != p {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", u.Path, p, again, err)
		}
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = normalizePath("/api/v1/items/42")
	}
}

// BenchmarkMatch shows how route matching grows with the number of routes
// (the request matches the last, catch-all route: the worst case).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			var routes []*Route
			for i := range n - 1 {
				routes = append(routes, &Route{Name: "r", PathPrefix: fmt.Sprintf("/svc%d/", i)})
			}
			routes = append(routes, &Route{Name: "rest", PathPrefix: "/"})
			b.ReportAllocs()
			for b.Loop() {
				_ = match(routes, "app.example.com", "/api/v1/items/42")
			}
		})
	}
}
