package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		want headerClass
	}{
		// The identity family: every member, every spelling.
		{"X-Auth-Request-User", identityHeader},
		{"X_Auth_Request_Email", identityHeader},
		{"x-auth-request-groups", identityHeader},
		{"X-AUTH-REQUEST-PREFERRED-USERNAME", identityHeader},
		{"X-Auth-Request-Access-Token", identityHeader},
		{"X-Auth-Request-Roles", identityHeader},  // a member Gatehouse never sets
		{"X-Auth-Request-Tenant", identityHeader}, // nor this one
		{"X-Forwarded-User", identityHeader},
		{"X_forwarded_email", identityHeader},
		{"X-Forwarded-Groups", identityHeader},
		{"X-Forwarded-Preferred-Username", identityHeader},
		{"X-Forwarded-Access-Token", identityHeader},
		{"Remote-User", identityHeader},
		{"Authorization", identityHeader}, // the configured token header
		// Rewrite headers: the path or method an upstream would serve instead.
		{"X-Original-URL", rewriteHeader},
		{"X-Original-Uri", rewriteHeader},
		{"X_Original_Method", rewriteHeader},
		{"X-Rewrite-Url", rewriteHeader},
		{"X-Forwarded-Uri", rewriteHeader},
		// Forwarding headers: believed from trusted proxies only.
		{"Forwarded", forwardingHeader},
		{"X-Forwarded-For", forwardingHeader},
		{"X-Forwarded-Host", forwardingHeader},
		{"X-Forwarded-Proto", forwardingHeader},
		{"X-Forwarded-Port", forwardingHeader},
		{"X-Forwarded-Prefix", forwardingHeader},
		{"x_forwarded_ssl", forwardingHeader},
		{"X-Real-Ip", forwardingHeader},
		// Plain.
		{"Accept", plainHeader},
		{"Cookie", plainHeader},
		{"X-Auth-Request", plainHeader}, // the prefix alone is no member
		{"X-Forwarded", plainHeader},
		{"X-Authrequest-User", plainHeader},
		{strings.Repeat("X", 200), plainHeader},
		{"X-Auth-Request-" + strings.Repeat("Y", 200), identityHeader}, // longer than the fold buffer
	}
	for _, tt := range tests {
		if got := classify(tt.name, "authorization"); got != tt.want {
			t.Errorf("classify(%q) = %d; want %d", tt.name, got, tt.want)
		}
	}
}

func TestStripIdentity(t *testing.T) {
	h := http.Header{}
	// Every variant a client might use to smuggle identity.
	h["X-Auth-Request-User"] = []string{"admin"}
	h["X_Auth_Request_Email"] = []string{"ceo@corp"}
	h["x-auth-request-groups"] = []string{"admins", "admins"}
	h["X-AUTH-REQUEST-PREFERRED-USERNAME"] = []string{"root"}
	h["X-Auth-Request-Roles"] = []string{"admin"}
	h["X-Forwarded-User"] = []string{"admin"}
	h["X_forwarded_email"] = []string{"a@b"}
	h["Authorization"] = []string{"Bearer forged"}
	h["Remote-User"] = []string{"admin"}
	h["Accept"] = []string{"text/html"}
	h["X-Authrequest-User"] = []string{"kept: not an identity header"}
	stripIdentity(h, "authorization")
	if len(h) != 2 || h.Get("Accept") == "" || h.Get("X-Authrequest-User") == "" {
		t.Fatalf("after strip got %v; want only Accept and X-Authrequest-User", h)
	}
}

func TestSanitizeUpstream(t *testing.T) {
	in := http.Header{
		"X-Auth-Request-User": {"admin"}, "X-Original-Url": {"/admin"}, "X-Rewrite-Url": {"/admin"},
		"Forwarded": {"for=1.2.3.4"}, "X-Forwarded-Prefix": {"/admin"}, "X-Real-Ip": {"1.2.3.4"},
		"Accept": {"*/*"}, "X-Custom": {"kept"},
	}
	for _, tt := range []struct {
		trusted bool
		want    []string
	}{
		{false, []string{"Accept", "X-Custom"}},
		{true, []string{"Accept", "Forwarded", "X-Custom", "X-Forwarded-Prefix", "X-Real-Ip"}},
	} {
		h := in.Clone()
		sanitizeUpstream(h, "authorization", tt.trusted)
		var got []string
		for k := range h {
			got = append(got, k)
		}
		if strings.Join(sorted(got), ",") != strings.Join(tt.want, ",") {
			t.Errorf("trusted=%v: kept %v; want %v", tt.trusted, sorted(got), tt.want)
		}
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestStripCookies(t *testing.T) {
	ours := func(n string) bool { return n == "gatehouse" || strings.HasPrefix(n, "gatehouse-flow-") }
	tests := []struct {
		name string
		in   []string
		want string // "" = no Cookie header
	}{
		{"only ours", []string{"gatehouse=secret"}, ""},
		{"mixed", []string{"a=1; gatehouse=secret; b=2"}, "a=1; b=2"},
		{"flow cookie", []string{"gatehouse-flow-abc=x; csrftoken=t"}, "csrftoken=t"},
		{"several lines", []string{"a=1", "gatehouse=s"}, "a=1"},
		{"none of ours", []string{"a=1; b=2"}, "a=1; b=2"},
		{"lookalike kept", []string{"gatehouses=1"}, "gatehouses=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cookie": tt.in}
			stripCookies(h, ours)
			if got := strings.Join(h.Values("Cookie"), "|"); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// FuzzStripIdentity checks, for any pair of header names, that stripping
// removes a header exactly when its folded name (lower case, '_' as '-')
// is in the identity family by an independent reading of the family, and
// keeps every other header with its values untouched.
func FuzzStripIdentity(f *testing.F) {
	for _, s := range [][2]string{
		{"X-Auth-Request-User", "Accept"}, {"x_auth_request_email", "X-Forwarded-For"},
		{"X-AUTH-REQUEST-GROUPS", "X-Auth-Request"}, {"Authorization", "Cookie"}, {"remote_user", "x-auth-request-"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{a: {"va"}, b: {"vb", "vb2"}}
		before := h.Clone()
		stripIdentity(h, "authorization")
		for name, vals := range before {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			identity := n == "authorization" || (strings.HasPrefix(n, "x-auth-request-") && len(n) > len("x-auth-request-")) ||
				map[string]bool{"x-forwarded-user": true, "x-forwarded-email": true, "x-forwarded-groups": true,
					"x-forwarded-preferred-username": true, "x-forwarded-access-token": true, "remote-user": true}[n]
			got, kept := h[name]
			switch {
			case identity && kept:
				t.Fatalf("identity header %q survived", name)
			case !identity && classify(name, "authorization") != identityHeader && (!kept || strings.Join(got, "|") != strings.Join(vals, "|")):
				t.Fatalf("header %q changed: %q -> %q (kept %v)", name, vals, got, kept)
			}
		}
	})
}

func BenchmarkStripIdentity(b *testing.B) {
	base := http.Header{
		"Accept": {"*/*"}, "User-Agent": {"bench"}, "Cookie": {"gatehouse=x; a=b"},
		"Accept-Encoding": {"gzip"}, "X-Request-Id": {"r"}, "Authorization": {"Bearer x"},
	}
	b.ReportAllocs()
	for b.Loop() {
		h := make(http.Header, len(base))
		for k, v := range base {
			h[k] = v
		}
		stripIdentity(h, "authorization")
	}
}
