package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
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
		{"/a%7fb", ""},
		{"/a%c2%85b", ""}, // U+0085 NEXT LINE, a C1 control
		{"/caf%c3%a9/", "/café/"},
		{"/a;b/../c", "/c"},
		{"/public/..;/admin", ""},
		{"/public/.;x/admin", ""},
		{"/public/%2e%2e%3bx/admin", ""},
		{"/public/x..;/admin", "/public/x..;/admin"},
		{"/public/%c0%ae%c0%ae/admin", ""},
		{"/public/%ef%bc%8e%ef%bc%8e/admin", ""},
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

func TestReadPath(t *testing.T) {
	tests := []struct {
		raw       string // request target as sent
		clean     string
		ambiguous bool
		err       error // nil = accepted
	}{
		{raw: "/", clean: "/"},
		{raw: "/api/v1/items/42", clean: "/api/v1/items/42"},
		{raw: "/api/v1/items/?q=/public/../x;y", clean: "/api/v1/items/"},
		{raw: "/%61dmin/", clean: "/admin/"},
		{raw: "/caf%C3%A9/men%C3%BC", clean: "/café/menü"},
		{raw: "/public/x%20y", clean: "/public/x y"},

		// Dot segments, resolved and ambiguous.
		{raw: "/public/../admin", clean: "/admin", ambiguous: true},
		{raw: "/public/%2e%2e/admin", clean: "/admin", ambiguous: true},
		{raw: "/public/.", clean: "/public", ambiguous: true},
		{raw: "/public/./", clean: "/public/", ambiguous: true},
		// Repeated and encoded slashes.
		{raw: "//admin", clean: "/admin", ambiguous: true},
		{raw: "/public//x", clean: "/public/x", ambiguous: true},
		{raw: "/public%2Fx", clean: "/public/x", ambiguous: true},
		{raw: "/public%2fx", clean: "/public/x", ambiguous: true},
		// Servlet path parameters.
		{raw: "/public/..;/admin", err: errPathDotParam},
		{raw: "/public/..;x=1/admin", err: errPathDotParam},
		{raw: "/public/.;/admin", err: errPathDotParam},
		{raw: "/public/%2e%2e;/admin", err: errPathDotParam},
		{raw: "/public/..%3b/admin", err: errPathDotParam},
		{raw: "/public/%2e%2e%3B/admin", err: errPathDotParam},
		{raw: "/..;", err: errPathDotParam},
		{raw: "/admin;x=1/", clean: "/admin;x=1/", ambiguous: true},
		{raw: "/admin;jsessionid=abc", clean: "/admin;jsessionid=abc", ambiguous: true},
		{raw: "/;x/admin", clean: "/;x/admin", ambiguous: true},
		{raw: "/admin%3bx/", clean: "/admin;x/", ambiguous: true},
		{raw: "/x...;/y", clean: "/x...;/y", ambiguous: true},
		// Not UTF-8 once decoded: overlong forms, surrogates, stray bytes.
		{raw: "/public/%c0%ae%c0%ae/admin", err: errPathNotUTF8},
		{raw: "/public%c0%afadmin", err: errPathNotUTF8},
		{raw: "/public/%e0%80%ae", err: errPathNotUTF8},
		{raw: "/public/%f0%80%80%ae", err: errPathNotUTF8},
		{raw: "/public/%ed%a0%80", err: errPathNotUTF8},
		{raw: "/public/%ff", err: errPathNotUTF8},
		{raw: "/public/%c3", err: errPathNotUTF8},
		// Characters that normalize to path syntax.
		{raw: "/public/%ef%bc%8e%ef%bc%8e/admin", err: errPathLookalike}, // U+FF0E
		{raw: "/public%ef%bc%8fadmin", err: errPathLookalike},            // U+FF0F
		{raw: "/public%ef%bc%bcadmin", err: errPathLookalike},            // U+FF3C
		{raw: "/public/%e2%80%a4%e2%80%a4/admin", err: errPathLookalike}, // U+2024
		{raw: "/public/%e2%80%a5/admin", err: errPathLookalike},          // U+2025 ".."
		{raw: "/public/%ef%b9%92", err: errPathLookalike},                // U+FE52
		{raw: "/public%e2%88%95admin", err: errPathLookalike},            // U+2215
		{raw: "/public%e2%81%84admin", err: errPathLookalike},            // U+2044
		{raw: "/public%e2%a7%b8admin", err: errPathLookalike},            // U+29F8
		// ... and text NFKC changes otherwise.
		{raw: "/%ef%bd%81dmin/", clean: "/\uff41dmin/", ambiguous: true}, // U+FF41
		{raw: "/%e2%84%aa/", clean: "/\u212a/", ambiguous: true},         // KELVIN SIGN
		{raw: "/cafe%cc%81/", clean: "/cafe\u0301/", ambiguous: true},    // NFD
		// Double encoding and encoded query or fragment.
		{raw: "/public/%252e%252e/admin", clean: "/public/%2e%2e/admin", ambiguous: true},
		{raw: "/public/%25u002e", clean: "/public/%u002e", ambiguous: true},
		{raw: "/admin%3F/../public/", clean: "/public/", ambiguous: true},
		{raw: "/admin%23/../public/", clean: "/public/", ambiguous: true},
		// Windows trims trailing dots and spaces.
		{raw: "/admin./x", clean: "/admin./x", ambiguous: true},
		{raw: "/admin%20/x", clean: "/admin /x", ambiguous: true},
		{raw: "/admin..", clean: "/admin..", ambiguous: true},
		// Refused outright.
		{raw: "/a%5cb", err: errBadPath},
		{raw: "/a%00", err: errBadPath},
		{raw: "/a%0d%0ab", err: errBadPath},
		{raw: "/a%c2%9bb", err: errBadPath},
		{raw: "*", err: errBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readPath(u)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("readPath(%q) = %+v, %v; want %v", tt.raw, got, err, tt.err)
				}
				return
			}
			if err != nil || got.clean != tt.clean || got.ambiguous != tt.ambiguous {
				t.Fatalf("readPath(%q) = %+v, %v; want {clean:%s ambiguous:%v}", tt.raw, got, err, tt.clean, tt.ambiguous)
			}
		})
	}
}

// TestReadPathOriginalURL reads the absolute URLs an ingress sends as the
// original request (forward-auth), not only request targets.
func TestReadPathOriginalURL(t *testing.T) {
	tests := []struct {
		raw       string
		clean     string
		ambiguous bool
	}{
		{"https://app.example.com", "/", false},
		{"https://app.example.com/admin/x?y=1#frag", "/admin/x", false},
		{"https://app.example.com/public%2F..%2Fadmin", "/admin", true},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readPath(u)
		if err != nil || got.clean != tt.clean || got.ambiguous != tt.ambiguous {
			t.Errorf("readPath(%q) = %+v, %v; want {clean:%s ambiguous:%v}", tt.raw, got, err, tt.clean, tt.ambiguous)
		}
	}
}

// TestLookalikeFamily holds readPath to an independent oracle: every
// character whose full NFKC form contains '.', '/' or '\' is refused
// wherever it stands, and characters whose NFKC form does not (but that
// NFKC changes) are only ambiguous.
func TestLookalikeFamily(t *testing.T) {
	refused := 0
	for r := rune(0xa0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		nfkc := norm.NFKC.String(string(r))
		if !strings.ContainsAny(nfkc, `./\`) {
			continue
		}
		refused++
		p := "/public/x" + string(r) + "y"
		if _, err := readPath(&url.URL{Path: p}); !errors.Is(err, errPathLookalike) {
			t.Errorf("%U (NFKC %q): readPath = %v; want %v", r, nfkc, err, errPathLookalike)
		}
	}
	// The family as of Unicode 15: at least these.
	for _, r := range []rune{0x2024, 0x2025, 0x2026, 0xFE52, 0xFF0E, 0xFF0F, 0xFE68, 0xFF3C, 0x2100, 0x2488} {
		if _, err := readPath(&url.URL{Path: "/" + string(r)}); !errors.Is(err, errPathLookalike) {
			t.Errorf("%U: readPath = %v; want %v", r, err, errPathLookalike)
		}
	}
	if refused < 30 {
		t.Errorf("found %d characters that NFKC maps to path syntax; want the whole family (38 in Unicode 15)", refused)
	}
	for _, r := range []rune{0xFF41, 0x212A, 0x017F, 0x3000, 0xFB01} { // ａ, K, ſ, ideographic space, ﬁ
		got, err := readPath(&url.URL{Path: "/" + string(r)})
		if err != nil || !got.ambiguous {
			t.Errorf("%U: readPath = %+v, %v; want accepted and ambiguous", r, got, err)
		}
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
		p, err := readPath(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := match(routes, tt.host, p.clean); got == nil || got.Name != tt.want {
			t.Errorf("match(%q, %q) = %v; want %s", tt.host, tt.raw, got, tt.want)
		}
	}
}

// FuzzReadPath checks the properties routing and forwarding rely on, for
// any request target: clean is absolute, has no dot or empty segments, no
// "..;" or ".;" segment, no backslash, no control character, is valid
// UTF-8 with no character that normalizes to path syntax; reading clean
// again gives clean (the forwarded path is decided the same way upstream of
// a second Gatehouse); an unambiguous path is forwarded exactly as sent;
// and the forwarded form (net/url's escaping of clean) reads back as clean.
func FuzzReadPath(f *testing.F) {
	for _, s := range []string{
		"/", "/a/../b", "/public/%2e%2e/admin", "//x", "/a/./b/", "/\\x", "/a%00",
		"/public/..;/admin", "/admin;x=1/", "/public/%c0%ae%c0%ae/", "/%ef%bc%8e%ef%bc%8e/",
		"/public/%252e%252e/admin", "/admin%3F/../public/", "/admin./", "/%ef%bd%81dmin",
		"/caf%c3%a9", "/a%2Fb", "/a;b/..;c/", "/x?q=/../",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		p, err := readPath(u)
		if err != nil {
			return
		}
		c := p.clean
		if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") || !utf8.ValidString(c) {
			t.Fatalf("readPath(%q).clean = %q", raw, c)
		}
		for i, r := range c {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\\' {
				t.Fatalf("readPath(%q).clean = %q: %U at %d", raw, c, r, i)
			}
			if strings.ContainsAny(norm.NFKC.String(string(r)), `./\`) && r != '.' && r != '/' {
				t.Fatalf("readPath(%q).clean = %q: %U normalizes to path syntax", raw, c, r)
			}
		}
		for seg := range strings.SplitSeq(c, "/") {
			base, _, _ := strings.Cut(seg, ";")
			if base == "." || base == ".." {
				t.Fatalf("dot segment survived: %q -> %q", raw, c)
			}
		}
		again, err := readPath(&url.URL{Path: c})
		if err != nil || again.clean != c {
			t.Fatalf("not a fixed point: %q -> %q -> %+v, %v", raw, c, again, err)
		}
		if again.ambiguous && !p.ambiguous {
			t.Fatalf("cleaning made %q ambiguous: %q", raw, c)
		}
		if !p.ambiguous && c != u.Path && u.Path != "" {
			t.Fatalf("unambiguous %q is forwarded as %q, not as sent (%q)", raw, c, u.Path)
		}
		out, err := url.ParseRequestURI((&url.URL{Path: c}).EscapedPath())
		if err != nil || out.Path != c {
			t.Fatalf("forwarded form of %q does not read back: %v, %v", c, out, err)
		}
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = normalizePath("/api/v1/items/42")
	}
}

func BenchmarkReadPath(b *testing.B) {
	u, _ := url.ParseRequestURI("/api/v1/items/42?page=2")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = readPath(u)
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
