// Package upstream is the HTTP/1.1 client a reverse proxy reaches its
// upstreams with: an http.RoundTripper over a per-host pool of idle
// connections that does the round trip on the calling goroutine, where
// http.Transport runs two goroutines per connection and hands every request
// and response between them over channels.
//
// HTTP stays in net/http: requests are written with (*http.Request).Write
// and responses read with http.ReadResponse. What this package adds is the
// connection handling around them, with http.Transport's semantics: a
// connection goes back to the pool only when its response was read to the
// end, the request was written in full and neither side asked to close it;
// an idempotent request that fails on a reused connection before any byte
// of the response is retried; 1xx responses reach the httptrace hooks; a 101
// Switching Protocols response's Body is the connection itself.
//
// Only plain http:// goes this way: https stays in net/http (Fallback).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults of the zero values of Transport's fields.
const (
	// DefaultMaxIdleConnsPerHost is http.DefaultMaxIdleConnsPerHost.
	DefaultMaxIdleConnsPerHost = http.DefaultMaxIdleConnsPerHost
	// DefaultMaxResponseHeaderBytes bounds a response's header block: far
	// above what any application sends, far below what would hurt.
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// Transport is an http.RoundTripper for HTTP/1.1 upstreams. Its fields are
// read when requests are made: set them before the first one. A Transport
// is safe for concurrent use and keeps its connections across requests, so
// make one and share it. It is meant for a fixed set of upstreams: it keeps
// a pool per host:port it has ever reached.
type Transport struct {
	// DialTimeout bounds connecting to an upstream. Zero means no limit
	// but the request's context.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's header once
	// the request is written (body included). Zero means no limit. The
	// error of a timeout is a net.Error whose Timeout method reports true.
	ResponseHeaderTimeout time.Duration
	// ExpectContinueTimeout is how long a request with a body and
	// "Expect: 100-continue" waits for the upstream's 100 Continue before
	// its body is sent anyway. Zero sends the body at once.
	ExpectContinueTimeout time.Duration
	// IdleConnTimeout closes a connection left idle this long. Zero keeps
	// idle connections until the upstream closes them.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per upstream
	// host:port. Zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// MaxResponseHeaderBytes bounds the header of a response, and of each
	// 1xx response delivered to an httptrace Got1xxResponse hook (without
	// a hook, all of a response's 1xx headers count together). Zero means
	// DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int64
	// Fallback serves every request whose URL scheme is not "http" (https
	// upstreams: TLS stays in net/http). If nil, such requests fail.
	Fallback http.RoundTripper

	mu    sync.Mutex                       // serializes adding pools
	pools atomic.Pointer[map[string]*pool] // copy on write: a lookup takes no lock
	now   func() time.Time                 // tests set it; nil = time.Now
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper. It runs on the calling goroutine,
// except for the writing of a request body, which runs beside the reading
// of the response, so that an upstream may answer before it has read the
// whole body (as http.Transport allows).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("upstream: nil Request.URL")
	}
	if req.URL.Scheme != "http" {
		if t.Fallback != nil {
			return t.Fallback.RoundTrip(req)
		}
		closeBody(req)
		return nil, fmt.Errorf("upstream: unsupported protocol scheme %q", req.URL.Scheme)
	}
	if err := checkRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	p := t.pool(req.URL)
	for {
		if ctx.Err() != nil {
			closeBody(req)
			return nil, context.Cause(ctx)
		}
		c, err := p.get(ctx)
		if err != nil {
			closeBody(req)
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, err
		}
		resp, err := exchange(ctx, c, req)
		if _, ok := err.(retryError); ok {
			// A stale keep-alive connection: the upstream closed it while
			// it was idle. Only a reused connection is retried, so this
			// ends at the latest with a new one.
			continue
		}
		return resp, err
	}
}

// CloseIdleConnections closes the idle connections, and those of Fallback.
// Connections in use are not interrupted.
func (t *Transport) CloseIdleConnections() {
	if m := t.pools.Load(); m != nil {
		for _, p := range *m {
			p.closeIdle()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// pool returns the pool of u's host:port.
func (t *Transport) pool(u *url.URL) *pool {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if m := t.pools.Load(); m != nil {
		if p := (*m)[addr]; p != nil {
			return p
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]*pool
	if m := t.pools.Load(); m != nil {
		old = *m
	}
	if p := old[addr]; p != nil {
		return p
	}
	m := make(map[string]*pool, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	p := &pool{t: t, addr: addr}
	m[addr] = p
	t.pools.Store(&m)
	return p
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConnsPerHost > 0 {
		return t.MaxIdleConnsPerHost
	}
	return DefaultMaxIdleConnsPerHost
}

func (t *Transport) maxHeader() int64 {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

func (t *Transport) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// checkRequest refuses what http.Transport refuses before it dials: a
// request it could not write, or whose header would inject lines.
func checkRequest(req *http.Request) error {
	if req.Header == nil {
		return errors.New("upstream: nil Request.Header")
	}
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("upstream: invalid method %q", req.Method)
	}
	if req.URL.Host == "" {
		return errors.New("upstream: no Host in request URL")
	}
	if err := checkHeader(req.Header); err != "" {
		return fmt.Errorf("upstream: invalid header %s", err)
	}
	if err := checkHeader(req.Trailer); err != "" {
		return fmt.Errorf("upstream: invalid trailer %s", err)
	}
	return nil
}

func checkHeader(h http.Header) string {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Sprintf("field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				// Not the value: it may be a secret.
				return fmt.Sprintf("field value for %q", k)
			}
		}
	}
	return ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// replayable reports whether req may be sent again after a failure that
// may have reached the upstream: http.Transport's rule.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// wantsClose reports whether the request asks to close the connection.
func wantsClose(req *http.Request) bool {
	return req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
}

// isProtocolSwitch reports whether a 101 response switches protocols: its
// body is then the connection.
func isProtocolSwitch(h http.Header) bool {
	return h.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue")
}

// retryError marks a failure on a reused connection that the request may
// be retried after.
type retryError struct{ err error }

func (e retryError) Error() string { return e.err.Error() }
func (e retryError) Unwrap() error { return e.err }

// timeoutError is a net.Error that timed out.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

var (
	errHeaderTimeout = &timeoutError{"upstream: timeout awaiting response headers"}
	errClosedBody    = errors.New("upstream: read on closed response body")
)

var _ net.Error = errHeaderTimeout
