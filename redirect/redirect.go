// Package redirect decides whether a redirect target taken from a request
// (the rd parameter of login and sign-out) is safe to send a browser to.
//
// The rules are deliberately narrower than RFC 3986: a target is either a
// relative path that every browser resolves against Gatehouse's own origin, or
// an absolute http(s) URL whose host is explicitly allowed. Everything that
// parsers disagree on (backslashes, whitespace, control characters, userinfo,
// percent-encoded hosts, dot segments that rebuild "//") is rejected rather
// than interpreted; see oauth2-proxy CVE-2020-5233, CVE-2020-11053,
// CVE-2020-4037 and CVE-2021-21291 for what happens otherwise.
package redirect

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxLength is the longest redirect target Check accepts, in bytes.
const MaxLength = 2048

// ErrInvalidRedirect is wrapped by every error Check returns.
var ErrInvalidRedirect = errors.New("redirect: invalid redirect target")

// Policy decides where Gatehouse may send a browser after login or logout.
// A Policy is immutable and safe for concurrent use.
type Policy struct {
	rules []rule
}

// rule is one allowed host: the public URL's host or an allowed_domains entry.
type rule struct {
	host       string // lowercase DNS name, or an IP address in canonical form
	subdomains bool   // also match any subdomain of host, on a label boundary
	port       string // "" matches no port or the scheme's default port
}

// NewPolicy returns a Policy that allows relative paths, publicURL's host and
// the hosts in allowedDomains.
//
// publicURL is Gatehouse's external base URL (scheme, host and optional port;
// any path is ignored). Each allowedDomains entry is a hostname that must match
// exactly ("app.example.com"), or a hostname with a leading dot that matches
// itself and every subdomain (".example.com" matches "example.com" and
// "a.b.example.com", never "evilexample.com"). Either form may end in ":port";
// without one only the scheme's default port is allowed. IP addresses are
// allowed as exact entries ("127.0.0.1:8080", "[::1]:8080").
func NewPolicy(publicURL string, allowedDomains []string) (*Policy, error) {
	pub, err := parsePublicURL(publicURL)
	if err != nil {
		return nil, fmt.Errorf("redirect: public URL %q: %w", publicURL, err)
	}
	p := &Policy{rules: make([]rule, 0, 1+len(allowedDomains))}
	p.rules = append(p.rules, pub)
	for _, entry := range allowedDomains {
		r, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("redirect: allowed domain %q: %w", entry, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func parsePublicURL(raw string) (rule, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return rule{}, errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return rule{}, errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return rule{}, errors.New("must not contain userinfo")
	}
	host, port, err := splitHostPort(strings.ToLower(u.Host))
	if err != nil {
		return rule{}, err
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	return rule{host: host, port: port}, nil
}

func parseEntry(entry string) (rule, error) {
	if entry == "" {
		return rule{}, errors.New("empty")
	}
	if strings.Contains(entry, "://") || strings.ContainsAny(entry, "/?#@") {
		return rule{}, errors.New(`must be a hostname such as "app.example.com" or ".example.com", not a URL`)
	}
	if strings.HasPrefix(entry, "*") {
		return rule{}, errors.New(`wildcards are not supported; ".example.com" matches example.com and all its subdomains`)
	}
	s := strings.ToLower(entry)
	var r rule
	if strings.HasPrefix(s, ".") {
		r.subdomains = true
		s = s[1:]
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return rule{}, err
	}
	if r.subdomains {
		if _, err := netip.ParseAddr(host); err == nil {
			return rule{}, errors.New("an IP address cannot have subdomains")
		}
		if !strings.Contains(host, ".") {
			return rule{}, errors.New("a leading dot would allow a whole top-level domain")
		}
	}
	r.host, r.port = host, port
	return r, nil
}

// allows reports whether host and port (as split by splitHostPort) match a rule
// for a URL with the given lowercase scheme.
func (p *Policy) allows(scheme, host, port string) bool {
	if port == defaultPort(scheme) {
		port = ""
	}
	for _, r := range p.rules {
		hostOK := host == r.host ||
			(r.subdomains && strings.HasSuffix(host, r.host) && host[len(host)-len(r.host)-1] == '.')
		if !hostOK {
			continue
		}
		if port == r.port || (port == "" && r.port == defaultPort(scheme)) {
			return true
		}
	}
	return false
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// invalid returns an error wrapping ErrInvalidRedirect with the reason.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidRedirect, reason)
}

// Check returns the cleaned target to redirect to, or an error wrapping
// ErrInvalidRedirect that says why raw is refused.
//
// Accepted are a relative path starting with exactly one "/" (with optional
// query and fragment), and an absolute http or https URL whose host is
// publicURL's host or matches an allowed domain. Rejected are, among others:
// "//host" and "/\host", backslashes, whitespace and control characters
// anywhere (raw or percent-encoded in the path), paths that decode or
// dot-resolve to "//", userinfo, other schemes (javascript:, data:, ...),
// "https:host" without slashes, percent-encoded or non-ASCII hosts, hosts with
// a trailing dot, disallowed ports, and targets longer than MaxLength.
//
// The cleaned target has a lowercase scheme and host, and every byte that is
// not allowed in an RFC 3986 URI (non-ASCII, `"<>[]^{|}` and backquote, a second
// "#") percent-encoded, which is what a browser would send anyway. Check of a
// cleaned target returns it unchanged. Call Check again when a stored target is
// used, not only when it is received.
func (p *Policy) Check(raw string) (string, error) {
	if raw == "" {
		return "", invalid("empty")
	}
	if len(raw) > MaxLength {
		return "", invalid("longer than " + strconv.Itoa(MaxLength) + " bytes")
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c < 0x20 || c == 0x7f:
			return "", invalid("control character")
		case c == ' ':
			return "", invalid("whitespace")
		case c == '\\':
			return "", invalid("backslash")
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", invalid("malformed percent-encoding")
			}
		}
	}
	if raw[0] == '/' {
		return p.checkRelative(raw)
	}
	return p.checkAbsolute(raw)
}

func (p *Policy) checkRelative(raw string) (string, error) {
	if len(raw) > 1 && raw[1] == '/' {
		return "", invalid("scheme-relative URL")
	}
	path, _ := splitPath(raw)
	if err := checkPath(path); err != nil {
		return "", err
	}
	return escape(raw), nil
}

func (p *Policy) checkAbsolute(raw string) (string, error) {
	colon := strings.IndexByte(raw, ':')
	if colon <= 0 || strings.ContainsAny(raw[:colon], "/?#") || !isScheme(raw[:colon]) {
		return "", invalid("must be a path starting with / or an http or https URL")
	}
	scheme := strings.ToLower(raw[:colon])
	if scheme != "http" && scheme != "https" {
		if len(scheme) > 16 {
			scheme = scheme[:16] + "..."
		}
		return "", invalid(fmt.Sprintf("scheme %q not allowed", scheme))
	}
	rest, ok := strings.CutPrefix(raw[colon+1:], "//")
	if !ok {
		return "", invalid(`missing "//" after "` + scheme + `:"`)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	switch {
	case authority == "":
		return "", invalid("missing host")
	case strings.IndexByte(authority, '@') >= 0:
		return "", invalid("userinfo not allowed")
	case strings.IndexByte(authority, '%') >= 0:
		return "", invalid("percent-encoded host")
	}
	for i := 0; i < len(authority); i++ {
		if authority[i] >= 0x80 {
			return "", invalid("non-ASCII host")
		}
	}
	authority = strings.ToLower(authority)
	host, port, err := splitHostPort(authority)
	if err != nil {
		return "", invalid("host: " + err.Error())
	}
	if !p.allows(scheme, host, port) {
		return "", invalid("host not allowed")
	}
	path, _ := splitPath(tail)
	if err := checkPath(path); err != nil {
		return "", err
	}
	cleaned := scheme + "://" + authority + escape(tail)

	// Cross-check with net/url, the parser the rest of Gatehouse uses: a target
	// it reads differently from us is ambiguous, so nobody gets to pick.
	u, err := url.Parse(cleaned)
	if err != nil || u.Scheme != scheme || u.User != nil || u.Opaque != "" || u.Host != authority {
		return "", invalid("ambiguous URL")
	}
	return cleaned, nil
}

// splitPath splits a URL tail into its path and the query/fragment after it.
func splitPath(s string) (path, rest string) {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// checkPath rejects a path (raw, with valid percent-escapes) that decodes to a
// control character or backslash, or that some reader could take for "//host":
// browsers drop tabs and newlines, and other software trims spaces and resolves
// dot segments (also written %2e) before looking at it.
func checkPath(path string) error {
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return invalid("malformed percent-encoding")
	}
	for i := 0; i < len(decoded); i++ {
		switch c := decoded[i]; {
		case c < 0x20 || c == 0x7f:
			return invalid("percent-encoded control character")
		case c == '\\':
			return invalid("percent-encoded backslash")
		}
	}
	squeezed := strings.ReplaceAll(decoded, " ", "")
	if strings.HasPrefix(removeDotSegments(squeezed), "//") {
		return invalid("path resolves to a scheme-relative URL")
	}
	return nil
}

// removeDotSegments is RFC 3986 section 5.2.4.
func removeDotSegments(in string) string {
	if !strings.Contains(in, ".") {
		return in
	}
	var out []string // each element is a segment with its leading "/"
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "/..":
			in = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "." || in == "..":
			in = ""
		default:
			start := 0
			if in[0] == '/' {
				start = 1
			}
			end := strings.IndexByte(in[start:], '/')
			if end < 0 {
				end = len(in)
			} else {
				end += start
			}
			out = append(out, in[:end])
			in = in[end:]
		}
	}
	return strings.Join(out, "")
}

// splitHostPort splits a lowercase authority ("host", "host:port",
// "[v6]:port") and checks that the host is a DNS name or an IP address.
func splitHostPort(authority string) (host, port string, err error) {
	if authority == "" {
		return "", "", errors.New("empty host")
	}
	if authority[0] == '[' {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", errors.New("missing ']'")
		}
		host = authority[1:end]
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "", errors.New("invalid IPv6 address")
		}
		host = addr.String()
		rest := authority[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", errors.New("unexpected text after ']'")
		}
		port, err := checkPort(rest[1:])
		return host, port, err
	}
	host = authority
	if i := strings.IndexByte(authority, ':'); i >= 0 {
		host = authority[:i]
		if port, err = checkPort(authority[i+1:]); err != nil {
			return "", "", err
		}
	}
	if err := checkHostname(host); err != nil {
		return "", "", err
	}
	return host, port, nil
}

func checkPort(port string) (string, error) {
	if port == "" || len(port) > 5 || port[0] == '0' {
		return "", errors.New("port must be a number from 1 to 65535")
	}
	n := 0
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", errors.New("port must be a number from 1 to 65535")
		}
		n = n*10 + int(port[i]-'0')
	}
	if n > 65535 {
		return "", errors.New("port must be a number from 1 to 65535")
	}
	return port, nil
}

// checkHostname accepts a lowercase DNS name or a dotted-quad IPv4 address.
// A name whose last label is numeric is refused unless it is a canonical IPv4
// address, because browsers read "0x7f.1" or "2130706433" as an IP address.
func checkHostname(host string) error {
	if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		return nil
	}
	if host == "" || len(host) > 253 {
		return errors.New("invalid hostname")
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label in hostname (a trailing dot is not allowed)")
		}
		if len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("invalid hostname")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return errors.New("invalid character in hostname")
			}
		}
	}
	if last := labels[len(labels)-1]; isNumericLabel(last) {
		return errors.New("hostname ending in a number is read as an IP address")
	}
	return nil
}

// isNumericLabel reports whether a browser's IPv4 parser would accept l as a
// number (WHATWG URL "ends in a number"): decimal, or 0x-prefixed hex.
func isNumericLabel(l string) bool {
	if strings.HasPrefix(l, "0x") {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lowercase letters; digits and +-. are unaffected
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && ((s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'):
		default:
			return false
		}
	}
	return s != ""
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// escape percent-encodes the bytes of a URL tail that RFC 3986 does not allow
// there, and every "#" after the first.
func escape(s string) string {
	n := 0
	seenHash := false
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i], &seenHash) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	seenHash = false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c, &seenHash) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func mustEscape(c byte, seenHash *bool) bool {
	switch c {
	case '"', '<', '>', '[', ']', '^', '`', '{', '|', '}':
		return true
	case '#':
		if *seenHash {
			return true
		}
		*seenHash = true
		return false
	}
	return c >= 0x80
}
