package redirect

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// The policy every test uses unless it says otherwise.
const testPublicURL = "https://app.example.com"

var testAllowed = []string{
	".example.org",          // example.org and all its subdomains
	"api.example.net:8443",  // exactly this host and port
	"static.example.io",     // exactly this host, default port only
	"127.0.0.1:9000",        // an IP address, exact
	"[::1]:9001",            // an IPv6 address, exact
	".wildcard.example.com", // subdomains of a subdomain of the public host
}

func newTestPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := NewPolicy(testPublicURL, testAllowed)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

func TestCheckAccepts(t *testing.T) {
	p := newTestPolicy(t)
	tests := []struct {
		in   string
		want string // "" = in unchanged
	}{
		{in: "/"},
		{in: "/dashboard"},
		{in: "/a/b/c?x=1&y=2"},
		{in: "/a#section"},
		{in: "/a?next=https://evil.com"},       // a URL in the query is only data
		{in: "/search?q=a//b"},                 // so is "//"
		{in: "/a/b//c"},                        // "//" after the first segment stays on our origin
		{in: "/https://evil.com"},              // a path segment named "https:"
		{in: "/my%20file.pdf"},                 // an encoded space inside a segment
		{in: "/%2e%2e/x"},                      // dot segments that do not rebuild "//"
		{in: "/a/../b"},                        // ditto
		{in: "/~user/;param=1"},                // sub-delims
		{in: "/caf%C3%A9"},                     // encoded UTF-8
		{in: "/café", want: "/caf%C3%A9"},      // raw UTF-8 is encoded
		{in: "/a|b", want: "/a%7Cb"},           // bytes RFC 3986 does not allow
		{in: `/"><x>`, want: "/%22%3E%3Cx%3E"}, // never reaches a page unescaped
		{in: "/a#b#c", want: "/a#b%23c"},       // a second "#" is data
		{in: "/x\u0085", want: "/x%C2%85"},     // C1 controls are not stripped by browsers; encoded like all non-ASCII
		{in: "https://app.example.com"},
		{in: "https://app.example.com/"},
		{in: "https://app.example.com/x?y=1#z"},
		{in: "https://app.example.com:443/x"}, // default port spelled out
		{in: "http://app.example.com/x"},      // public host, http's default port
		{in: "HTTPS://App.Example.COM/Path", want: "https://app.example.com/Path"}, // path case kept
		{in: "hTtP://app.example.com/", want: "http://app.example.com/"},
		{in: "https://example.org/"},              // ".example.org" includes the domain itself
		{in: "https://a.b.example.org/x"},         // and subdomains at any depth
		{in: "https://api.example.net:8443/v1"},   // the allowed port
		{in: "https://static.example.io/app.js"},  // exact host
		{in: "http://127.0.0.1:9000/"},            // IP entries
		{in: "http://[::1]:9001/"},                // IPv6 entries
		{in: "http://[0:0::1]:9001/"},             // the same address written differently
		{in: "https://x.wildcard.example.com/"},   // nested suffix rule
		{in: "https://app.example.com?x=1"},       // query without path
		{in: "https://app.example.com#frag"},      // fragment without path
		{in: "https://xn--caf-dma.example.org/x"}, // an IDN in its ASCII form
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got, err := p.Check(tt.in)
			if err != nil {
				t.Fatalf("Check(%q): got error %v; want %q", tt.in, err, want)
			}
			if got != want {
				t.Fatalf("Check(%q) = %q; want %q", tt.in, got, want)
			}
			again, err := p.Check(got)
			if err != nil || again != got {
				t.Fatalf("Check(%q) = %q, %v; want %q, nil (idempotent)", got, again, err, got)
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	p := newTestPolicy(t)
	tests := []struct {
		in     string
		reason string // a substring of the error
	}{
		// SECURITY.md "Open redirect", in order.
		{`/\evil.com`, "backslash"},
		{"//evil.com", "scheme-relative"},
		{"/%09/evil.com", "percent-encoded control character"},
		{"/\t/\t\\evil.com", "control character"},
		{`/./\evil.com`, "backslash"},
		{"https://app.example.com@evil.com", "userinfo"},
		{"https://evilexample.com/", "host not allowed"},
		{"https://evilexample.org/", "host not allowed"},
		{"javascript:alert(1)", `scheme "javascript" not allowed`},
		{"data:text/html;base64,PHNjcmlwdD4=", `scheme "data" not allowed`},

		// CVE-2020-5233: "/\" and whitespace between the slashes.
		{"/\\\\evil.com", "backslash"},
		{"/ /evil.com", "whitespace"},
		{"/\v/evil.com", "control character"},
		{"/\n/evil.com", "control character"},
		{"/\r/evil.com", "control character"},
		{"/\t\t/\t/evil.com", "control character"},
		{"/./../../\\evil.com", "backslash"},

		// CVE-2020-11053: percent-encoded whitespace and control characters
		// that some layer decodes before a browser sees the URL.
		{"/%0a/evil.com", "percent-encoded control character"},
		{"/%0d/evil.com", "percent-encoded control character"},
		{"/%0b/evil.com", "percent-encoded control character"},
		{"/%00/evil.com", "percent-encoded control character"},
		{"/%7f/evil.com", "percent-encoded control character"},
		{"/%20/evil.com", "scheme-relative"},
		{"/%20%20/evil.com", "scheme-relative"},
		{"/x:1/:///%01javascript:alert(1)/", "percent-encoded control character"},

		// CVE-2020-4037: "/%2f" and "%5c" tricks that decode to "//" or "\".
		{"/%2fevil.com", "scheme-relative"},
		{"/%2F%2Fevil.com", "scheme-relative"},
		{"/%5cevil.com", "percent-encoded backslash"},
		{"/%5Cevil.com", "percent-encoded backslash"},
		{"/a/%5c/evil.com", "percent-encoded backslash"},
		{"/%2f%5c%2fevil.com", "percent-encoded backslash"},
		{"/.//evil.com", "scheme-relative"},
		{"/%2e//evil.com", "scheme-relative"},
		{"/a/..//evil.com", "scheme-relative"},
		{"/a/..%2f%2fevil.com", "scheme-relative"},
		{"/./%2fevil.com", "scheme-relative"},
		{"/..//evil.com", "scheme-relative"},

		// CVE-2021-21291: a suffix match that is not on a label boundary, and
		// the allowed name smuggled into another part of the URL.
		{"https://evil.example.org.attacker.com/", "host not allowed"},
		{"https://attackerexample.org/", "host not allowed"},
		{"https://evil.com/?rd=app.example.com", "host not allowed"},
		{"https://evil.com#@app.example.com", "host not allowed"},
		{"https://evil.com?@app.example.com", "host not allowed"},
		{"https://evil.com/.app.example.com", "host not allowed"},
		{"https://app.example.com.evil.com/", "host not allowed"},

		// Parser differentials around userinfo, backslashes and encodings.
		{`https://evil.com\@app.example.com`, "backslash"},
		{`https://evil.com\\@app.example.com`, "backslash"},
		{"https://app.example.com:443@evil.com", "userinfo"},
		{"https://user:pass@app.example.com/", "userinfo"},
		{"https://@app.example.com/", "userinfo"},
		{"https://evil.com%23.app.example.com/", "percent-encoded host"},
		{"https://evil.com%2f.app.example.com/", "percent-encoded host"},
		{"https://app%2eexample.com/", "percent-encoded host"},
		{"https://evil.com;.app.example.com/", "invalid character"},
		{"https://evil%E3%80%82com/", "percent-encoded host"},
		{"https://evil。com/", "non-ASCII host"},
		{"https://аpp.example.com/", "non-ASCII host"}, // Cyrillic "а"
		{"/%zz", "malformed percent-encoding"},
		{"/%", "malformed percent-encoding"},
		{"/%2", "malformed percent-encoding"},

		// Schemes: other schemes, mixed case, and http(s) without "//".
		{"JavaScript:alert(1)", `scheme "javascript" not allowed`},
		{"vbscript:msgbox(1)", `scheme "vbscript" not allowed`},
		{"file:///etc/passwd", `scheme "file" not allowed`},
		{"ftp://app.example.com/", `scheme "ftp" not allowed`},
		{"https:evil.com", `missing "//"`},
		{"https:/evil.com", `missing "//"`},
		{"HTTPS:evil.com", `missing "//"`},
		{"https:///evil.com", "missing host"},
		{"https://", "missing host"},
		{"//app.example.com/", "scheme-relative"},

		// Not a URL this package understands.
		{"", "empty"},
		{"evil.com", "must be a path"},
		{"app.example.com/x", "must be a path"},
		{"?x=1", "must be a path"},
		{"#x", "must be a path"},
		{"@evil.com", "must be a path"},
		{"%2f%2fevil.com", "must be a path"},
		{" /x", "whitespace"},
		{"/x ", "whitespace"},
		{"\x00/x", "control character"},
		{"/x\x00", "control character"},

		// Hosts and ports.
		{"https://app.example.com./", "trailing dot"},
		{"https://x.example.org./", "trailing dot"},
		{"https://app.example.com:8443/", "host not allowed"},
		{"https://api.example.net/", "host not allowed"},     // allowed only with its port
		{"https://api.example.net:443/", "host not allowed"}, // ditto
		{"https://static.example.io:8080/", "host not allowed"},
		{"https://sub.static.example.io/", "host not allowed"}, // exact entries have no subdomains
		{"https://example.com/", "host not allowed"},           // the public host is exact too
		{"https://wildcard.example.com.evil/", "host not allowed"},
		{"https://app.example.com:/", "port must be"},
		{"https://app.example.com:0443/", "port must be"},
		{"https://app.example.com:65536/", "port must be"},
		{"https://app.example.com:x/", "port must be"},
		{"http://127.0.0.1/", "host not allowed"},
		{"http://2130706433:9000/", "read as an IP address"},
		{"http://0x7f.0x0.0x0.0x1:9000/", "read as an IP address"},
		{"http://127.1:9000/", "read as an IP address"},
		{"http://[::ffff:127.0.0.1]:9000/", "host not allowed"},
		{"http://[::1%25eth0]:9001/", "percent-encoded host"},
		{"http://[::1:9001/", "host:"},
		{"https://-app.example.com/", "invalid hostname"},
		{"https://" + strings.Repeat("a", 64) + ".example.org/", "invalid hostname"},

		// Length.
		{"/" + strings.Repeat("a", MaxLength), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := p.Check(tt.in)
			if err == nil {
				t.Fatalf("Check(%q) = %q; want an error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidRedirect) {
				t.Errorf("Check(%q) error %v does not wrap ErrInvalidRedirect", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Check(%q) error = %q; want it to mention %q", tt.in, err, tt.reason)
			}
			if got != "" {
				t.Errorf("Check(%q) returned %q with its error; want \"\"", tt.in, got)
			}
		})
	}
}

// A path of exactly MaxLength bytes is accepted; one more byte is not.
func TestCheckLengthBoundary(t *testing.T) {
	p := newTestPolicy(t)
	atLimit := "/" + strings.Repeat("a", MaxLength-1)
	if _, err := p.Check(atLimit); err != nil {
		t.Errorf("Check(%d bytes): %v; want accepted", len(atLimit), err)
	}
	if _, err := p.Check(atLimit + "a"); err == nil {
		t.Errorf("Check(%d bytes): accepted; want an error", len(atLimit)+1)
	}
}

// A policy without allowed domains still allows the public host and paths.
func TestNewPolicyPublicURLOnly(t *testing.T) {
	tests := []struct {
		publicURL string
		accept    []string
		reject    []string
	}{
		{
			publicURL: "https://app.example.com/",
			accept:    []string{"/x", "https://app.example.com/x", "https://app.example.com:443/"},
			reject:    []string{"https://example.org/", "https://sub.app.example.com/"},
		},
		{
			publicURL: "http://127.0.0.1:4180/some/path",
			accept:    []string{"/x", "http://127.0.0.1:4180/x", "https://127.0.0.1:4180/"},
			reject:    []string{"http://127.0.0.1/", "http://127.0.0.1:4181/", "http://localhost:4180/"},
		},
		{
			publicURL: "http://[::1]:4180",
			accept:    []string{"http://[::1]:4180/"},
			reject:    []string{"http://[::2]:4180/"},
		},
		{
			publicURL: "https://App.Example.com:8443",
			accept:    []string{"https://app.example.com:8443/"},
			reject:    []string{"https://app.example.com/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.publicURL, func(t *testing.T) {
			p, err := NewPolicy(tt.publicURL, nil)
			if err != nil {
				t.Fatalf("NewPolicy(%q): %v", tt.publicURL, err)
			}
			for _, in := range tt.accept {
				if _, err := p.Check(in); err != nil {
					t.Errorf("Check(%q): %v; want accepted", in, err)
				}
			}
			for _, in := range tt.reject {
				if got, err := p.Check(in); err == nil {
					t.Errorf("Check(%q) = %q; want an error", in, got)
				}
			}
		})
	}
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		publicURL string
		domains   []string
		want      string // substring of the error
	}{
		{"", nil, `public URL ""`},
		{"app.example.com", nil, "absolute http or https URL"},
		{"ftp://app.example.com", nil, "absolute http or https URL"},
		{"https://user@app.example.com", nil, "userinfo"},
		{"https://app.example.com.", nil, "trailing dot"},
		{"https://", nil, "empty host"},
		{testPublicURL, []string{""}, `allowed domain "": empty`},
		{testPublicURL, []string{"https://example.org"}, `allowed domain "https://example.org": must be a hostname`},
		{testPublicURL, []string{"example.org/path"}, "must be a hostname"},
		{testPublicURL, []string{"*.example.org"}, "wildcards are not supported"},
		{testPublicURL, []string{"."}, "empty host"},
		{testPublicURL, []string{".com"}, "whole top-level domain"},
		{testPublicURL, []string{".127.0.0.1"}, "IP address cannot have subdomains"},
		{testPublicURL, []string{"example.org."}, "trailing dot"},
		{testPublicURL, []string{"example..org"}, "empty label"},
		{testPublicURL, []string{"exa mple.org"}, "invalid character"},
		{testPublicURL, []string{"example.org:0"}, "port must be"},
		{testPublicURL, []string{"example.org:99999"}, "port must be"},
		{testPublicURL, []string{"example.org:"}, "port must be"},
		{testPublicURL, []string{"[::1"}, "missing ']'"},
		{testPublicURL, []string{"ok.example.org", "bad_entry!"}, `"bad_entry!"`},
	}
	for _, tt := range tests {
		t.Run(tt.publicURL+" "+strings.Join(tt.domains, ","), func(t *testing.T) {
			p, err := NewPolicy(tt.publicURL, tt.domains)
			if err == nil {
				t.Fatalf("NewPolicy(%q, %q) = %v; want an error mentioning %q", tt.publicURL, tt.domains, p, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "redirect: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewPolicy(%q, %q) error = %q; want it to start with \"redirect: \" and mention %q", tt.publicURL, tt.domains, err, tt.want)
			}
		})
	}
}

// Go's own resolver must land every accepted relative target on the public
// origin; a second parser agreeing is the point of the exercise.
func TestCheckRelativeStaysOnOrigin(t *testing.T) {
	p := newTestPolicy(t)
	base, _ := url.Parse(testPublicURL + "/oauth2/callback")
	for _, in := range []string{"/", "/a", "/a/../b", "/%2e%2e/x", "/a/b//c", "/https://evil.com", "/a?b=//c#//d"} {
		got, err := p.Check(in)
		if err != nil {
			t.Fatalf("Check(%q): %v", in, err)
		}
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", got, err)
		}
		if h := base.ResolveReference(ref).Host; h != "app.example.com" {
			t.Errorf("%q resolves to host %q; want app.example.com", got, h)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	p := newTestPolicy(b)
	for _, in := range []string{
		"/dashboard/reports?year=2024#top",
		"https://a.b.example.org/some/path?x=1",
		"/%09/evil.com",
	} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Check(in) //nolint:errcheck // the rejected case is measured too
			}
		})
	}
}
