package proxy

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Why a path is refused. Each is answered with 400 (401 in forward-auth);
// none of them quotes the path, which may carry a token.
var (
	errBadPath       = errors.New("path contains a control character, a backslash or is not absolute")
	errPathNotUTF8   = errors.New("path is not valid UTF-8 once percent-decoded (an overlong or broken encoding)")
	errPathLookalike = errors.New("path contains a character that stands for '.', '/' or '\\' once normalized")
	errPathDotParam  = errors.New("path has a '.' or '..' segment with ';' parameters")
)

// requestPath is a request path as Gatehouse decides on it. Routing,
// public/private decisions and forwarding all use clean, so what was
// decided on is exactly what the upstream receives.
type requestPath struct {
	// clean is the normalized path: dot segments resolved, repeated
	// slashes collapsed, a trailing slash kept.
	clean string
	// ambiguous: an upstream may read the path as the client sent it
	// differently from clean (see readsDifferently). Such a request is
	// never public and must pass every route's rules.
	ambiguous bool
}

// readPath reads the path of u (a request URL or an ingress's original
// URL). An error means a path no upstream can be trusted to read as
// Gatehouse does; it is answered with 400 (401 in forward-auth).
//
// Each way an upstream reads a path differently from Go (issue 8, part 3;
// SECURITY.md "Paths an upstream reads differently") is either refused or
// marked ambiguous, as a class:
//
//   - control characters (C0, DEL, C1), backslashes, and percent-encodings
//     that are not valid UTF-8 (overlong forms such as %c0%ae for '.' and
//     %c0%af for '/', which old or lenient decoders accept): refused;
//   - characters whose compatibility normalization (NFKC, as IIS/ASP.NET
//     and some Python and Java frameworks apply) contains '.', '/' or
//     '\' (U+FF0E, U+FF0F, U+2025, U+FE68, ...), and the few slash look-alikes
//     that best-fit code-page conversion maps to '/' or '\' (U+2215, U+2044,
//     U+29F8, ...): refused;
//   - a '.' or '..' segment followed by ';' parameters ("/public/..;/admin"):
//     servlet containers strip ";..." from every segment before resolving
//     dot segments, so Tomcat and Jetty read "..;" as "..". Refused: no
//     client has a reason to send it, and forwarding it would hand the
//     upstream a ".." that Gatehouse did not resolve;
//   - a ';' anywhere else ("/admin;x=1/" is "/admin/" to a servlet
//     container but not to Go): ambiguous, and forwarded as sent, so
//     jsessionid-style URLs keep working under the strictest rules;
//   - everything in readsDifferently: ambiguous.
func readPath(u *url.URL) (requestPath, error) {
	clean, err := normalizePath(u.Path)
	if err != nil {
		return requestPath{}, err
	}
	return requestPath{clean: clean, ambiguous: readsDifferently(u.Path, u.RawPath)}, nil
}

// normalizePath returns the path every routing decision is made on, and that
// is then forwarded, so an encoded or dotted path cannot reach a protected
// route through a public one. decoded is the percent-decoded path
// (url.URL.Path): "%2e%2e" and "%2F" have already become ".." and "/" there.
// Dot segments are resolved, repeated slashes collapse, a trailing slash is
// kept. What readPath documents as refused is refused here.
func normalizePath(decoded string) (string, error) {
	if decoded == "" {
		return "/", nil
	}
	if decoded[0] != '/' {
		return "", errBadPath
	}
	simple := true
	for i := 0; i < len(decoded); i++ {
		c := decoded[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '\\':
			return "", errBadPath
		case c >= utf8.RuneSelf, c == ';':
			simple = false
		case c == '/' && i+1 < len(decoded) && (decoded[i+1] == '/' || decoded[i+1] == '.'):
			simple = false
		}
	}
	if simple {
		return decoded, nil // the common case: no allocation
	}
	if err := checkRunes(decoded); err != nil {
		return "", err
	}
	trailing := strings.HasSuffix(decoded, "/")
	var out []string
	for seg := range strings.SplitSeq(decoded, "/") {
		if base, _, params := strings.Cut(seg, ";"); params && (base == "." || base == "..") {
			return "", errPathDotParam
		}
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

// slashLike are symbols that NFKC leaves alone but that Windows' best-fit
// conversion to a code page, or confusable folding, turns into '/' or '\'.
// NFKC's own family is computed, not listed (see lookalike).
var slashLike = map[rune]bool{
	'\u2044': true, // FRACTION SLASH
	'\u2215': true, // DIVISION SLASH
	'\u2216': true, // SET MINUS
	'\u29F8': true, // BIG SOLIDUS
	'\u29F9': true, // BIG REVERSE SOLIDUS
}

// checkRunes refuses what a byte scan cannot see: broken UTF-8 (overlong
// forms included: utf8 rejects them), C1 control characters, and
// characters that normalize to path syntax.
func checkRunes(s string) error {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return errPathNotUTF8
		case r <= 0x9f: // C1 controls, U+0080 to U+009F
			return errBadPath
		case lookalike(s[i:i+size]) || slashLike[r]:
			return errPathLookalike
		}
		i += size
	}
	return nil
}

// lookalike reports whether one encoded rune's compatibility decomposition
// contains '.', '/' or '\': U+FF0E FULLWIDTH FULL STOP, U+2024 ONE DOT
// LEADER, U+2025 (".."), U+FF0F FULLWIDTH SOLIDUS, U+FE68 SMALL REVERSE
// SOLIDUS, U+2100 ("a/c") and the rest of that family, whatever Unicode
// version x/text carries. Composition never creates these ASCII
// characters, so looking at each rune's decomposition finds every path
// whose NFKC form gains one.
func lookalike(r string) bool {
	d := norm.NFKC.PropertiesString(r).Decomposition()
	for _, c := range d {
		if c == '.' || c == '/' || c == '\\' {
			return true
		}
	}
	return false
}

// readsDifferently reports whether a common upstream may read the path
// as sent (decoded is url.URL.Path, raw its RawPath) as another path than
// its normalized form, so that the request must never be public and must
// pass every route's rules:
//
//   - dot segments, which servers resolve before or after decoding, after
//     or before collapsing slashes, or not at all (Django);
//   - empty segments ("//"), which Tomcat collapses and Django does not;
//   - a '?' or '#' that was percent-encoded, at which some servers cut the
//     path ("/admin%23/../public/" is "/public/" normalized, "/admin" cut);
//   - a ';' (servlet path parameters, see readPath);
//   - a '%' left after decoding ("%252e" is "%2e" to Go, "." to an
//     upstream that decodes twice, IIS's "%u002e" included);
//   - an encoded slash (%2F): Go's ServeMux and Apache keep it inside a
//     segment, Tomcat refuses it, Django decodes it;
//   - a segment ending in '.' or ' ', which Windows (IIS) trims
//     ("/admin./" is "/admin/" there);
//   - text that NFKC changes ("/ａｄｍｉｎ/" is "/admin/" to an upstream that
//     normalizes).
func readsDifferently(decoded, raw string) bool {
	if hasEncodedSlash(raw) {
		return true
	}
	ascii := true
	start := 0 // where the current segment starts
	for i := 0; i <= len(decoded); i++ {
		if i < len(decoded) {
			switch c := decoded[i]; {
			case c == '?' || c == '#' || c == ';' || c == '%':
				return true
			case c >= utf8.RuneSelf:
				ascii = false
			}
			if decoded[i] != '/' {
				continue
			}
			if i == 0 {
				start = 1
				continue
			}
		}
		seg := decoded[start:i]
		switch {
		case seg == "" && i < len(decoded): // "//"; a trailing "/" is fine
			return true
		case seg != "" && (seg[len(seg)-1] == '.' || seg[len(seg)-1] == ' '):
			return true // ".", ".." and Windows' trimmed dots and spaces
		}
		start = i + 1
	}
	return !ascii && !norm.NFKC.IsNormalString(decoded)
}

// hasEncodedSlash reports whether raw (an escaped path) contains %2F.
func hasEncodedSlash(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '%' && raw[i+1] == '2' && (raw[i+2] == 'f' || raw[i+2] == 'F') {
			return true
		}
	}
	return false
}
