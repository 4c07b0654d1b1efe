package proxy

import (
	"strings"
	"testing"
)

func TestParseOriginal(t *testing.T) {
	tests := []struct {
		raw string
		ok  bool
	}{
		{"https://app.example.com/api/x?y=1", true},
		{"/api/x?y=1", true},
		{"http://app.example.com", true},
		{"https://app.example.com/a#frag", true},
		{"ftp://app.example.com/", false},
		{"javascript:alert(1)", false},
		{"//evil.example/x", false},
		{"https://user@app.example.com/", false},
		{"https:///nohost", false},
		{"api/x", false},
		{"/a b", false},
		{"/a\tb", false},
		{"/a\\b", false},
		{"https://app.example.com/%zz", false},
		{"", false},
	}
	for _, tt := range tests {
		u, err := parseOriginal(tt.raw)
		if (err == nil) != tt.ok {
			t.Errorf("parseOriginal(%q) = %v, %v; want ok=%v", tt.raw, u, err, tt.ok)
		}
		if err == nil && u.Fragment != "" {
			t.Errorf("parseOriginal(%q) kept fragment %q", tt.raw, u.Fragment)
		}
	}
}

// FuzzParseOriginal: whatever is accepted is an http(s) URL with a host or
// an absolute path, free of control characters and backslashes, whose path
// normalizes or is refused — never a panic.
func FuzzParseOriginal(f *testing.F) {
	for _, s := range []string{"https://a.example/x", "/x?y", "//evil", "/%2e%2e/admin", "http://a/\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseOriginal(raw)
		if err != nil {
			return
		}
		if u.IsAbs() && (u.Host == "" || (u.Scheme != "http" && u.Scheme != "https")) {
			t.Fatalf("accepted %q as %v", raw, u)
		}
		if !u.IsAbs() && !strings.HasPrefix(u.Path, "/") {
			t.Fatalf("accepted relative %q", raw)
		}
		if strings.ContainsAny(raw, "\\\x00\r\n\t ") {
			t.Fatalf("accepted %q with a control character or backslash", raw)
		}
		_, _ = normalizePath(u.Path)
	})
}
