package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// problem is one thing wrong with the configuration, at one key.
type problem struct {
	key, msg string
}

// invalidError lists every problem Validate found.
type invalidError []problem

func (e invalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range e {
		b.WriteString("\n  ")
		b.WriteString(p.key)
		b.WriteString(": ")
		b.WriteString(p.msg)
	}
	return b.String()
}

type validator struct {
	problems []problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, problem{key, fmt.Sprintf(format, args...)})
}

// Validate checks the whole configuration and reports every problem at once,
// one per line, each naming its key:
//
//	invalid configuration:
//	  oidc.issuer: required
//	  routes[1].upstream: "ftp://x": must be an http or https URL
//
// It reads the files the configuration names (to check they are readable) but
// does not parse signing keys. Secret values never appear in its messages.
func (c *Config) Validate() error {
	v := &validator{}
	listenOK := v.listenAddr("listen", c.Listen)
	if v.listenAddr("metrics_listen", c.MetricsListen) && listenOK &&
		c.Listen == c.MetricsListen && !strings.HasSuffix(c.Listen, ":0") {
		v.add("metrics_listen", "%q: must differ from listen", c.MetricsListen)
	}
	pub := v.publicURL(c.PublicURL)
	c.validateOIDC(v)
	c.validateCookie(v, pub)
	c.validateSession(v)
	c.validateRedis(v)
	c.validateToken(v)
	if t := c.Tracing; t.Endpoint != "" {
		if _, err := checkHTTPURL(t.Endpoint); err != nil {
			v.add("tracing.endpoint", "%q: %v", t.Endpoint, err)
		}
	}
	if r := c.Tracing.SampleRatio; r < 0 || r > 1 {
		v.add("tracing.sample_ratio", "%v: must be from 0 to 1", r)
	}
	for i, e := range c.Authorization.AllowedEmails {
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 || strings.ContainsAny(e, " \t\r\n,") {
			v.add(fmt.Sprintf("authorization.allowed_emails[%d]", i), "%q: must be one email address", e)
		}
	}
	for i, d := range c.Authorization.EmailDomains {
		key := fmt.Sprintf("authorization.email_domains[%d]", i)
		switch {
		case d == "*":
			v.add(key, `"*": leave email_domains empty to allow any domain`)
		case strings.HasPrefix(d, "@"):
			v.add(key, "%q: write the domain without \"@\"", d)
		default:
			if err := checkHostname(strings.ToLower(d)); err != nil {
				v.add(key, "%q: %v", d, err)
			}
		}
	}
	v.nonEmpty("authorization.allowed_groups", c.Authorization.AllowedGroups)
	for i, d := range c.Redirect.AllowedDomains {
		// The public URL plays no part in checking an entry's syntax.
		if _, err := redirect.NewPolicy("http://localhost", []string{d}); err != nil {
			v.add(fmt.Sprintf("redirect.allowed_domains[%d]", i), "%s", strings.TrimPrefix(err.Error(), "redirect: allowed domain "))
		}
	}
	v.nonEmpty("api.accepted_audiences", c.API.AcceptedAudiences)
	v.nonEmpty("api.accept_id_tokens", c.API.AcceptIDTokens)
	c.validateIntrospection(v)
	c.validateRoutes(v)
	for i, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if a, err := netip.ParseAddr(p); err != nil || a.Zone() != "" {
			v.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q: must be a CIDR (10.0.0.0/8) or an IP address", p)
		}
	}
	for i, o := range c.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			v.add(fmt.Sprintf("allowed_origins[%d]", i), "%q: %v", o, err)
		}
	}
	v.oneOf("log.format", c.Log.Format, "json", "text")
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	c.validateServer(v)
	if len(v.problems) == 0 {
		return nil
	}
	return invalidError(v.problems)
}

// listenAddr checks a listen address and reports whether it is valid.
func (v *validator) listenAddr(key, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q: must be host:port, such as 127.0.0.1:4180 or :4180", addr)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "%q: port must be a number from 0 to 65535", addr)
		return false
	}
	if host != "" {
		if err := checkHostname(strings.ToLower(host)); err != nil {
			v.add(key, "%q: %v", addr, err)
			return false
		}
	}
	return true
}

// publicURL checks public_url and returns it parsed, or nil if it is invalid.
func (v *validator) publicURL(s string) *url.URL {
	const key = "public_url"
	if s == "" {
		v.add(key, "required")
		return nil
	}
	u, err := checkHTTPURL(s)
	if err != nil {
		v.add(key, "%q: %v", s, err)
		return nil
	}
	if u.Path != "" && u.Path != "/" {
		v.add(key, "%q: must not have a path; Gatehouse serves from the root of its host", s)
		return nil
	}
	// main builds its redirect policy from public_url: make sure it can.
	if _, err := redirect.NewPolicy(s, nil); err != nil {
		v.add(key, "%s", strings.TrimPrefix(err.Error(), "redirect: public URL "))
		return nil
	}
	return u
}

func (c *Config) validateOIDC(v *validator) {
	o := c.OIDC
	if o.Issuer == "" {
		v.add("oidc.issuer", "required")
	} else if u, err := checkHTTPURL(o.Issuer); err != nil {
		v.add("oidc.issuer", "%q: %v", o.Issuer, err)
	} else if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		v.add("oidc.issuer", "%q: must use https (http is allowed only for localhost, 127.0.0.1 and ::1)", o.Issuer)
	}
	if o.ClientID == "" {
		v.add("oidc.client_id", "required")
	}
	c.secretPair(v, "oidc.client_secret", "oidc.client_secret_file",
		o.ClientSecret != "" && !c.loaded.clientSecretFromFile, o.ClientSecretFile, true,
		func(p string) error { _, err := readSecretFile(p); return err })
	hasOpenID := false
	for i, s := range o.Scopes {
		if s == "openid" {
			hasOpenID = true
		}
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			v.add(fmt.Sprintf("oidc.scopes[%d]", i), "%q: must be a non-empty scope name without spaces", s)
		}
	}
	if !hasOpenID {
		v.add("oidc.scopes", "must include openid")
	}
	if o.GroupsClaim == "" {
		v.add("oidc.groups_claim", "required")
	} else if _, err := oidcclient.ParseClaimPath(o.GroupsClaim); err != nil {
		v.add("oidc.groups_claim", "%v", err)
	}
	for i, p := range o.GroupsClaims {
		if _, err := oidcclient.ParseClaimPath(p); err != nil {
			v.add(fmt.Sprintf("oidc.groups_claims[%d]", i), "%v", err)
		}
	}
	v.positive("oidc.discovery_timeout", o.DiscoveryTimeout)
}

func (c *Config) validateIntrospection(v *validator) {
	a := c.API
	if a.Introspection && len(a.AcceptedAudiences) == 0 {
		v.add("api.introspection", "true requires api.accepted_audiences (an introspected token must name one of them)")
	}
	if a.IntrospectionEndpoint != "" {
		if !a.Introspection {
			v.add("api.introspection_endpoint", "set, but api.introspection is false")
		}
		if u, err := checkHTTPURL(a.IntrospectionEndpoint); err != nil {
			v.add("api.introspection_endpoint", "%q: %v", a.IntrospectionEndpoint, err)
		} else if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			v.add("api.introspection_endpoint", "%q: must use https (http is allowed only for localhost, 127.0.0.1 and ::1)", a.IntrospectionEndpoint)
		}
	}
	if a.IntrospectionCacheTTL < time.Second || a.IntrospectionCacheTTL > time.Hour {
		v.add("api.introspection_cache_ttl", "%s: must be from 1s to 1h", formatDuration(a.IntrospectionCacheTTL))
	}
	if a.IntrospectionRate < 1 || a.IntrospectionRate > 10000 {
		v.add("api.introspection_rate", "%d: must be from 1 to 10000", a.IntrospectionRate)
	}
}

// secretPair checks a secret that may be set inline or through a file:
// exactly one of them when required, at most one otherwise, and a readable
// file. read checks a file Load did not read (a Config built by hand).
func (c *Config) secretPair(v *validator, key, fileKey string, inline bool, file string, required bool, read func(string) error) {
	switch {
	case inline && file != "":
		v.add(key, "set only one of %s and %s", key, fileKey)
	case !inline && file == "" && required:
		v.add(key, "required (or %s)", fileKey)
	}
	if file == "" {
		return
	}
	for _, p := range c.loaded.problems {
		if p.key == fileKey {
			v.add(fileKey, "%s", p.msg)
			return
		}
	}
	if !inline && !c.loadedFrom(fileKey) {
		if err := read(file); err != nil {
			v.add(fileKey, "%v", err)
		}
	}
}

// loadedFrom reports whether Load filled a secret from fileKey.
func (c *Config) loadedFrom(fileKey string) bool {
	switch fileKey {
	case "oidc.client_secret_file":
		return c.loaded.clientSecretFromFile
	case "cookie.secrets_file":
		return c.loaded.cookieSecretsFromFile
	case "redis.password_file":
		return c.loaded.redisPasswordFromFile
	case "redis.sentinel_password_file":
		return c.loaded.sentinelPasswordFromFile
	}
	return false
}

// minCookieSecret is the shortest cookie secret accepted: 256 bits.
const minCookieSecret = 32

func (c *Config) validateCookie(v *validator, pub *url.URL) {
	k := c.Cookie
	switch {
	case k.Name == "":
		v.add("cookie.name", "required")
	case !isToken(k.Name):
		v.add("cookie.name", "%q: must be a cookie name (letters, digits and !#$%%&'*+-.^_`|~)", k.Name)
	case hasPrefixFold(k.Name, "__Host-"), hasPrefixFold(k.Name, "__Secure-"):
		v.add("cookie.name", "%q: leave out the prefix; Gatehouse adds __Host- itself when cookie.secure is true", k.Name)
	}
	fromFile := c.loaded.cookieSecretsFromFile
	c.secretPair(v, "cookie.secrets", "cookie.secrets_file", len(k.Secrets) > 0 && !fromFile, k.SecretsFile, true,
		func(p string) error { _, err := readSecretLines(p); return err })
	for i, s := range k.Secrets {
		if len(s) >= minCookieSecret {
			continue
		}
		if fromFile {
			v.add("cookie.secrets_file", "secret %d is %d bytes; each must be at least %d", i+1, len(s), minCookieSecret)
		} else {
			v.add(fmt.Sprintf("cookie.secrets[%d]", i), "is %d bytes; must be at least %d", len(s), minCookieSecret)
		}
	}
	if k.Secure && pub != nil && pub.Scheme != "https" {
		v.add("cookie.secure", "true requires an https public_url (it is %q); set cookie.secure: false only for local development over http", c.PublicURL)
	}
}

func (c *Config) validateSession(v *validator) {
	s := c.Session
	v.oneOf("session.store", s.Store, "memory", "redis")
	v.positive("session.idle_timeout", s.IdleTimeout)
	if s.MaxLifetime <= 0 {
		v.positive("session.max_lifetime", s.MaxLifetime)
	} else if s.MaxLifetime < s.IdleTimeout {
		v.add("session.max_lifetime", "%s: must be at least session.idle_timeout (%s)", formatDuration(s.MaxLifetime), formatDuration(s.IdleTimeout))
	}
	if s.MemoryMaxSessions <= 0 {
		v.add("session.memory_max_sessions", "%d: must be greater than 0", s.MemoryMaxSessions)
	}
	if s.CacheTTL < 0 || s.CacheTTL > time.Minute {
		v.add("session.cache_ttl", "%s: must be between 0 (off) and 1m", formatDuration(s.CacheTTL))
	}
	if s.CacheMaxEntries <= 0 {
		v.add("session.cache_max_entries", "%d: must be greater than 0", s.CacheMaxEntries)
	}
}

func (c *Config) validateRedis(v *validator) {
	r := c.Redis
	if c.Session.Store == "redis" && len(r.Addrs) == 0 {
		v.add("redis.addrs", "required when session.store is redis")
	}
	for i, a := range r.Addrs {
		if err := checkHostPort(a, true); err != nil {
			v.add(fmt.Sprintf("redis.addrs[%d]", i), "%q: %v", a, err)
		}
	}
	mode := r.EffectiveMode()
	switch mode {
	case "standalone", "sentinel", "cluster":
	default:
		v.add("redis.mode", "%q: must be standalone, sentinel or cluster", r.Mode)
		mode = ""
	}
	switch mode {
	case "standalone":
		if len(r.Addrs) > 1 {
			v.add("redis.addrs", "%d addresses: standalone mode takes one; set redis.mode: cluster (seed nodes) or sentinel (with redis.master_name)", len(r.Addrs))
		}
	case "sentinel":
		if r.MasterName == "" {
			v.add("redis.master_name", "required when redis.mode is sentinel")
		}
	}
	if mode != "sentinel" && mode != "" {
		if r.MasterName != "" {
			v.add("redis.master_name", "only with redis.mode: sentinel (it is %s)", mode)
		}
		for _, k := range []struct {
			key string
			set bool
		}{
			{"redis.sentinel_username", r.SentinelUsername != ""},
			{"redis.sentinel_password", r.SentinelPassword != "" && !c.loaded.sentinelPasswordFromFile},
			{"redis.sentinel_password_file", r.SentinelPasswordFile != ""},
		} {
			if k.set {
				v.add(k.key, "only with redis.mode: sentinel (it is %s)", mode)
			}
		}
	}
	switch {
	case r.DB < 0:
		v.add("redis.db", "%d: must not be negative", r.DB)
	case r.DB != 0 && mode == "cluster":
		v.add("redis.db", "%d: must be 0 with redis.mode: cluster", r.DB)
	}
	if r.PoolSize < 0 {
		v.add("redis.pool_size", "%d: must not be negative (0 = the client's default)", r.PoolSize)
	}
	c.secretPair(v, "redis.password", "redis.password_file", r.Password != "" && !c.loaded.redisPasswordFromFile, r.PasswordFile, false,
		func(p string) error { _, err := readSecretFile(p); return err })
	c.secretPair(v, "redis.sentinel_password", "redis.sentinel_password_file", r.SentinelPassword != "" && !c.loaded.sentinelPasswordFromFile, r.SentinelPasswordFile, false,
		func(p string) error { _, err := readSecretFile(p); return err })
	if r.TLSCAFile != "" {
		if !r.TLS {
			v.add("redis.tls_ca_file", "requires redis.tls: true")
		}
		v.readable("redis.tls_ca_file", r.TLSCAFile)
	}
	if r.TLSServerName != "" && !r.TLS {
		v.add("redis.tls_server_name", "requires redis.tls: true")
	}
	switch {
	case r.KeyPrefix == "":
		v.add("redis.key_prefix", "required")
	case strings.ContainsAny(r.KeyPrefix, "{} \t\r\n"):
		v.add("redis.key_prefix", "%q: must not contain braces or whitespace (Gatehouse's keys use {hash tags})", r.KeyPrefix)
	}
	v.positive("redis.dial_timeout", r.DialTimeout)
	v.positive("redis.timeout", r.Timeout)
}

// Headers the minted token must not be written into: framing, hop-by-hop, and
// the ones Gatehouse or the client owns.
var reservedHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Content-Type": true, "Cookie": true, "Host": true,
	"Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func (c *Config) validateToken(v *validator) {
	t := c.Token
	switch {
	case t.Issuer == "" && c.PublicURL != "":
		v.add("token.issuer", "required")
	case t.Issuer == c.PublicURL:
		// The default: public_url's own check covers it.
	case t.Issuer != "":
		if _, err := checkHTTPURL(t.Issuer); err != nil {
			v.add("token.issuer", "%q: %v", t.Issuer, err)
		}
	}
	if t.TTL < 10*time.Second || t.TTL > time.Hour {
		v.add("token.ttl", "%s: must be from 10s to 1h", formatDuration(t.TTL))
	}
	v.oneOf("token.algorithm", t.Algorithm, "ES256", "EdDSA", "RS256")
	for i, f := range t.SigningKeyFiles {
		key := fmt.Sprintf("token.signing_key_files[%d]", i)
		if f == "" {
			v.add(key, "empty path")
			continue
		}
		v.readable(key, f)
	}
	switch {
	case !isToken(t.Header):
		v.add("token.header", "%q: must be an HTTP header name", t.Header)
	case reservedHeaders[http1Canonical(t.Header)]:
		v.add("token.header", "%q: cannot carry the token", t.Header)
	}
	if t.Scheme != "" && !isToken(t.Scheme) {
		v.add("token.scheme", "%q: must be one word, such as Bearer, or empty for the bare token", t.Scheme)
	}
}

func (c *Config) validateRoutes(v *validator) {
	names := map[string]int{}
	type match struct{ host, prefix string }
	matches := map[match]int{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			v.add(key+".name", "required")
		case !isRouteName(r.Name):
			v.add(key+".name", "%q: use letters, digits, \"-\", \"_\" and \".\"", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				v.add(key+".name", "%q: routes[%d] has the same name", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		switch {
		case r.PathPrefix == "":
			v.add(key+".path_prefix", "required")
		case !strings.HasPrefix(r.PathPrefix, "/"):
			v.add(key+".path_prefix", "%q: must start with /", r.PathPrefix)
		case !isCleanPath(r.PathPrefix):
			v.add(key+".path_prefix", "%q: must be a normalized path (no \"//\", \".\" or \"..\" segments, %%-escapes, query or whitespace): requests are matched after normalization", r.PathPrefix)
		}
		if r.Host != "" {
			if _, _, err := net.SplitHostPort(r.Host); err == nil {
				// Routes match the request's host without its port, so a
				// port here would make the route never match.
				v.add(key+".host", "%q: must not have a port: routes match the host name alone", r.Host)
			} else if err := checkHostPort(strings.ToLower(r.Host), false); err != nil {
				v.add(key+".host", "%q: %v", r.Host, err)
			}
		}
		if r.Upstream == "" {
			v.add(key+".upstream", "required")
		} else if err := checkUpstream(r.Upstream); err != nil {
			v.add(key+".upstream", "%q: %v", r.Upstream, err)
		}
		if r.Audience != "" && strings.ContainsAny(r.Audience, " \t\r\n") {
			v.add(key+".audience", "%q: must not contain whitespace", r.Audience)
		}
		if r.Public && len(r.AllowedGroups) > 0 {
			v.add(key+".allowed_groups", "has no effect on a public route")
		}
		v.nonEmpty(key+".allowed_groups", r.AllowedGroups)
		v.nonEmpty(key+".groups", r.Groups)
		for _, name := range sortedKeys(r.Claims) {
			ckey := key + ".claims." + name
			switch {
			case name == "" || strings.ContainsAny(name, " \t\r\n"):
				v.add(key+".claims", "%q: claim names must be non-empty and without whitespace", name)
			case tokenmint.ReservedClaim(name):
				// The minter's own table: a mapping it would drop is refused here.
				v.add(ckey, "Gatehouse sets this claim itself or never carries it; choose another name")
			case r.Claims[name] == "":
				v.add(ckey, "provider claim name required")
			}
		}
		// "/x/" and "/x" match the same paths. A case-insensitive route may
		// take paths from an earlier one (see routes[].case_insensitive), so
		// it is left out of this check.
		m := match{strings.ToLower(r.Host), strings.TrimSuffix(r.PathPrefix, "/")}
		if j, dup := matches[m]; dup && !r.CaseInsensitive {
			v.add(key, "never matches: routes[%d] has the same host and path_prefix and comes first", j)
		} else if !dup && !r.CaseInsensitive {
			matches[m] = i
		}
	}
	switch {
	case c.Upstream != "":
		if err := checkUpstream(c.Upstream); err != nil {
			v.add("upstream", "%q: %v", c.Upstream, err)
		}
	case len(c.Routes) == 0:
		v.add("upstream", "required when routes is empty (there is nothing to proxy to)")
	}
}

func (c *Config) validateServer(v *validator) {
	s := c.Server
	v.positive("server.read_header_timeout", s.ReadHeaderTimeout)
	v.notNegative("server.read_timeout", s.ReadTimeout)
	v.notNegative("server.write_timeout", s.WriteTimeout)
	v.positive("server.idle_timeout", s.IdleTimeout)
	v.positive("server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxHeaderBytes <= 0 {
		v.add("server.max_header_bytes", "%d: must be greater than 0", s.MaxHeaderBytes)
	}
	t := c.UpstreamTransport
	v.positive("upstream_transport.dial_timeout", t.DialTimeout)
	v.positive("upstream_transport.response_header_timeout", t.ResponseHeaderTimeout)
	v.notNegative("upstream_transport.idle_conn_timeout", t.IdleConnTimeout)
	if t.MaxIdleConnsPerHost <= 0 {
		v.add("upstream_transport.max_idle_conns_per_host", "%d: must be greater than 0", t.MaxIdleConnsPerHost)
	}
	v.oneOf("upstream_transport.client", t.Client, "lean", "stdlib")
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "%s: must be greater than 0", formatDuration(d))
	}
}

func (v *validator) notNegative(key string, d time.Duration) {
	if d < 0 {
		v.add(key, "%s: must not be negative", formatDuration(d))
	}
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	v.add(key, "%q: must be one of %s", got, strings.Join(quoted, ", "))
}

func (v *validator) nonEmpty(key string, list []string) {
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			v.add(fmt.Sprintf("%s[%d]", key, i), "empty value")
		}
	}
}

func (v *validator) readable(key, file string) {
	f, err := openRegular(file)
	if err != nil {
		v.add(key, "%v", err)
		return
	}
	f.Close()
}

// checkHTTPURL checks an absolute http(s) URL with a host and no userinfo,
// query or fragment.
func checkHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("must be an http or https URL")
	}
	if u.User != nil {
		return nil, errors.New("must not contain a user or password")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	if err := checkHostPort(strings.ToLower(u.Host), false); err != nil {
		return nil, err
	}
	return u, nil
}

func checkUpstream(s string) error {
	_, err := checkHTTPURL(s)
	return err
}

// checkOrigin checks a browser origin: scheme://host[:port], nothing more.
func checkOrigin(s string) error {
	u, err := checkHTTPURL(s)
	if err != nil {
		return err
	}
	if u.Path != "" || u.RawPath != "" {
		return errors.New("must be an origin (scheme://host[:port]) without a path, not even \"/\"")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// checkHostPort checks "host", "host:port" or "[v6]:port"; portRequired
// makes the port mandatory.
func checkHostPort(s string, portRequired bool) error {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("port must be a number from 1 to 65535")
		}
	} else if portRequired {
		return errors.New("must be host:port")
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return errors.New("invalid host")
		}
		return nil
	}
	return checkHostname(strings.ToLower(host))
}

// checkHostname accepts a DNS name (lowercase letters, digits, "-", "_") or an
// IP address.
func checkHostname(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if h == "" || len(h) > 253 {
		return errors.New("invalid hostname")
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("invalid hostname")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return errors.New("invalid hostname")
			}
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of header
// names, auth schemes and cookie names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// http1Canonical is textproto.CanonicalMIMEHeaderKey for a valid token.
func http1Canonical(s string) string {
	b := []byte(strings.ToLower(s))
	upper := true
	for i, c := range b {
		if upper && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		upper = c == '-'
	}
	return string(b)
}

func isRouteName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return s != ""
}

// isCleanPath reports whether p is what path normalization leaves alone
// (a trailing "/" is kept, since "/api/" and "/api" match differently).
func isCleanPath(p string) bool {
	if strings.ContainsAny(p, "%?# \t\r\n\\") || strings.Contains(p, "//") {
		return false
	}
	clean := path.Clean(p)
	return p == clean || p == clean+"/"
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
