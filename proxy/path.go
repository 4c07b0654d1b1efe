package proxy

import (
	"errors"
	"net/url"
	"strings"
)

var errBadPath = errors.New("path contains a control character, a backslash or is not absolute")

// requestPath is a request path as Gatehouse decides on it. Routing,
// public/private decisions and forwarding all use clean, so what was
// decided on is exactly what the upstream receives.
type requestPath struct {
	// clean is the normalized path: dot segments resolved, repeated
	// slashes collapsed, a trailing slash kept.
	clean string
	// ambiguous: an upstream may read the path as the client sent it
	// differently from clean (dot segments, an encoded '?' or '#'). Such a
	// request is never public and must pass every route's rules.
	ambiguous bool
}

// readPath reads the path of u (a request URL or an ingress's original
// URL). An error means a path no upstream can be trusted to read as
// Gatehouse does; it is answered with 400 (401 in forward-auth).
func readPath(u *url.URL) (requestPath, error) {
	p, err := normalizePath(u.Path)
	if err != nil {
		return requestPath{}, err
	}
	return requestPath{clean: p, ambiguous: ambiguousPath(u.Path)}, nil
}

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

// ambiguousPath reports whether an upstream may serve another path than
// the normalized form of decoded (a percent-decoded original path): dot
// segments, which servers resolve before or after decoding or not at all,
// and a '?' or '#' that was percent-encoded, at which some servers cut
// the path ("/admin%23/../public/" is "/public/" normalized, "/admin" cut).
func ambiguousPath(decoded string) bool {
	if strings.ContainsAny(decoded, "?#") {
		return true
	}
	for seg := range strings.SplitSeq(decoded, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
