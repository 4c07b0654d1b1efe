package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/upstream"
)

// TransportConfig tunes the connection pool to the upstreams. Zero values
// take the defaults in brackets.
type TransportConfig struct {
	DialTimeout           time.Duration // [3s]
	ResponseHeaderTimeout time.Duration // [30s] a slower upstream gets a 504
	IdleConnTimeout       time.Duration // [90s]
	MaxIdleConnsPerHost   int           // [256] sized for a busy proxy: reuse beats new connections
	// Client is "lean" [default]: upstream.Transport for http:// upstreams,
	// net/http's http.Transport for https://; or "stdlib": http.Transport
	// for both.
	Client string
}

// Client values of TransportConfig.
const (
	ClientLean   = "lean"
	ClientStdlib = "stdlib"
)

// UpstreamTransport is what NewTransport returns, one of two
// implementations chosen by TransportConfig.Client: a transport whose idle
// connections can be closed when a reload replaces it.
type UpstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// maxResponseHeaderBytes bounds an upstream's response header, in both
// clients (http.Transport's own default is 10 MB).
const maxResponseHeaderBytes = 1 << 20

// NewTransport returns the upstream transport: keep-alive, a large idle
// pool per host, and a timeout on every phase. Both clients mean the same
// by every setting.
func NewTransport(c TransportConfig) UpstreamTransport {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.ResponseHeaderTimeout <= 0 {
		c.ResponseHeaderTimeout = 30 * time.Second
	}
	if c.IdleConnTimeout <= 0 {
		c.IdleConnTimeout = 90 * time.Second
	}
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = 256
	}
	std := &http.Transport{
		Proxy:                  nil, // never route upstream traffic through an environment proxy
		DialContext:            (&net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:           4 * c.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    c.MaxIdleConnsPerHost,
		IdleConnTimeout:        c.IdleConnTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  c.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// A proxy passes bodies through as they are: no Accept-Encoding of
		// its own, no transparent decompression.
		DisableCompression: true,
	}
	if c.Client == ClientStdlib {
		return std
	}
	// The lean client never adds Accept-Encoding nor decompresses, and
	// never consults the environment's proxy settings.
	return &upstream.Transport{
		DialTimeout:            c.DialTimeout,
		ResponseHeaderTimeout:  c.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        c.IdleConnTimeout,
		MaxIdleConnsPerHost:    c.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		Fallback:               std, // https: TLS stays in net/http
	}
}

// bufferPool recycles the 32 KiB copy buffers of the reverse proxies.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

var sharedBuffers = &bufferPool{}

func (s *Server) reverseProxy(rt *Route) *httputil.ReverseProxy {
	target := rt.Upstream
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			s.rewrite(pr, target, stateOf(pr.In))
		},
		Transport:  s.cfg.Transport,
		BufferPool: sharedBuffers,
		ErrorLog:   slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		// An upstream's status outside 100..999 would make ReverseProxy
		// call WriteHeader with it, which panics: it is a bad gateway.
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 100 || resp.StatusCode > 999 {
				return errBadUpstreamStatus
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code, msg := http.StatusBadGateway, "Upstream unavailable."
			var ne net.Error
			if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
				code, msg = http.StatusGatewayTimeout, "Upstream timed out."
			}
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away; nothing to answer
			}
			s.log.Warn("upstream error", "request_id", requestID(r), "route", rt.Name, "err", err)
			s.fail(w, r, code, msg)
		},
	}
}

// rewrite builds the upstream request. It runs after ReverseProxy has removed
// hop-by-hop headers (including any named in Connection) and the
// X-Forwarded-For, -Host and -Proto headers, so what it sets here reaches
// the upstream.
func (s *Server) rewrite(pr *httputil.ProxyRequest, target *url.URL, rs *reqState) {
	out := pr.Out
	out.URL.Scheme = target.Scheme
	out.URL.Host = target.Host
	fw := rs.fw
	p := "/"
	if fw != nil {
		p = fw.path
	}
	out.URL.Path = joinPath(target.Path, p)
	out.URL.RawPath = ""
	out.Host = pr.In.Host

	trusted := rs.trusted
	sanitizeUpstream(out.Header, s.tokenHdrNorm, trusted)
	if trusted {
		// Extend the chain: the trusted peer's X-Forwarded-For, then the
		// peer itself (SetXForwarded appends); its -Host and -Proto stand.
		if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
			out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
	}
	stripCookies(out.Header, s.isOurCookie)
	if rs.id != "" {
		out.Header.Set("X-Request-Id", rs.id)
	}
	s.injectTrace(pr.In.Context(), out.Header)
	if fw != nil && fw.authenticated {
		s.setIdentity(out.Header, fw)
	}
}

// setIdentity sets the minted token and the identity headers: on the
// upstream request, or on a forward-auth answer for the ingress to copy.
func (s *Server) setIdentity(h http.Header, fw *forward) {
	if s.cfg.Token.Scheme != "" {
		h.Set(s.cfg.Token.Header, s.cfg.Token.Scheme+" "+fw.token)
	} else {
		h.Set(s.cfg.Token.Header, fw.token)
	}
	h.Set(hdrUser, fw.user)
	setIf(h, hdrEmail, fw.email)
	setIf(h, hdrGroups, fw.groups)
	setIf(h, hdrPreferredUsername, fw.preferredUsername)
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

func joinPath(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
}

func (s *Server) isOurCookie(name string) bool {
	return name == s.cookieName || strings.HasPrefix(name, s.flowPrefix)
}

// trustedPeer reports whether the connection comes from a configured proxy
// whose forwarded headers may be believed.
func (s *Server) trustedPeer(remoteAddr string) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return s.trustedAddr(ap.Addr().Unmap())
}

// trustedAddr reports whether ip is in trusted_proxies.
func (s *Server) trustedAddr(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var errBadUpstreamStatus = errors.New("proxy: upstream answered an invalid status code")

// peerPrefix is the trusted_proxies entry that would trust exactly the peer
// at remoteAddr.
func peerPrefix(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return ""
	}
	ip := ap.Addr().Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()).String()
}
