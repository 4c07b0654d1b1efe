package redirect

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// allowedByTestPolicy restates testAllowed without this package's code, so the
// fuzz target checks Check against an independent reading of the policy.
func allowedByTestPolicy(u *url.URL) bool {
	host, port := u.Hostname(), u.Port()
	defaultPort := port == "" || (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80")
	if addr, err := netip.ParseAddr(host); err == nil {
		return (addr == netip.MustParseAddr("127.0.0.1") && port == "9000") ||
			(addr == netip.IPv6Loopback() && port == "9001")
	}
	switch {
	case host == "app.example.com", host == "static.example.io",
		host == "example.org", strings.HasSuffix(host, ".example.org"),
		host == "wildcard.example.com", strings.HasSuffix(host, ".wildcard.example.com"):
		return defaultPort
	case host == "api.example.net":
		return port == "8443"
	}
	return false
}

func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		// Accepted shapes.
		"/", "/a/b?c=d#e", "/caf%C3%A9", "/café", "/a#b#c", "/https://evil.com",
		"https://app.example.com/x", "HTTPS://App.Example.com:443/", "https://a.example.org/",
		"https://api.example.net:8443/", "http://[::1]:9001/", "http://127.0.0.1:9000",
		// SECURITY.md's open-redirect examples.
		`/\evil.com`, "//evil.com", "/%09/evil.com", "/\t/\t\\evil.com", `/./\evil.com`,
		"https://app.example.com@evil.com", "https://evilexample.org/", "javascript:alert(1)",
		"data:text/html,x",
		// CVE-2020-11053 / CVE-2020-4037 / CVE-2021-21291 shapes.
		"/%0a/evil.com", "/%2f%2fevil.com", "/%5cevil.com", "/.//evil.com", "/%2e%2e//evil.com",
		`https://evil.com\@app.example.com`, "https://evil.com#@app.example.com",
		"https://example.org.evil.com/", "https:evil.com", "https:///evil.com",
		"https://app.example.com./", "http://2130706433:9000/", "https://evil%E3%80%82com/",
	} {
		f.Add(seed)
	}
	p := newTestPolicy(f)
	base, _ := url.Parse(testPublicURL)
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := p.Check(raw)
		if err != nil {
			if got != "" {
				t.Fatalf("Check(%q) = %q, %v; want \"\" with an error", raw, got, err)
			}
			return
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				t.Fatalf("Check(%q) = %q: contains byte %#x", raw, got, c)
			}
		}
		u, perr := url.Parse(got)
		if perr != nil {
			t.Fatalf("Check(%q) = %q, which url.Parse rejects: %v", raw, got, perr)
		}
		if strings.HasPrefix(got, "/") {
			if strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
				t.Fatalf("Check(%q) = %q: scheme-relative", raw, got)
			}
			if h := base.ResolveReference(u).Host; h != base.Host {
				t.Fatalf("Check(%q) = %q resolves to host %q; want %q", raw, got, h, base.Host)
			}
		} else {
			if u.Scheme != "http" && u.Scheme != "https" {
				t.Fatalf("Check(%q) = %q: scheme %q", raw, got, u.Scheme)
			}
			if u.User != nil || u.Opaque != "" {
				t.Fatalf("Check(%q) = %q: userinfo or opaque part", raw, got)
			}
			if !allowedByTestPolicy(u) {
				t.Fatalf("Check(%q) = %q: host %q is not allowed", raw, got, u.Host)
			}
		}
		again, err := p.Check(got)
		if err != nil || again != got {
			t.Fatalf("Check(%q) = %q, %v; want %q, nil (idempotent)", got, again, err, got)
		}
	})
}
