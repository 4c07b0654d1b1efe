package proxy

import (
	"errors"
	"strings"
)

var errBadPath = errors.New("path contains a control character, a backslash or is not absolute")

// normalizePath returns the path every routing decision is made on, and that
// is then forwarded, so an encoded or dotted path cannot reach a protected
// route through a public one. decoded is the percent-decoded path
// (url.URL.Path): "%2e%2e" and "%2F" have already become ".." and "/" there.
// Dot segments are resolved, repeated slashes collapse, a trailing slash is
// kept. Backslashes and control characters are refused outright because
// upstreams disagree on what they mean.
func normalizePath(decoded string) (string, error) {
	if decoded == "" {
		return "/", nil
	}
	if decoded[0] != '/' {
		return "", errBadPath
	}
	clean := true
	for i := 0; i < len(decoded); i++ {
		c := decoded[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", errBadPath
		}
		if c == '/' && i+1 < len(decoded) && (decoded[i+1] == '/' || decoded[i+1] == '.') {
			clean = false
		}
	}
	if clean {
		return decoded, nil // the common case: no allocation
	}
	trailing := strings.HasSuffix(decoded, "/")
	var out []string
	for seg := range strings.SplitSeq(decoded, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	p := "/" + strings.Join(out, "/")
	if trailing && p != "/" {
		p += "/"
	}
	return p, nil
}
