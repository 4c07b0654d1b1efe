package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync/atomic"
	"time"
)

var errHeaderTooLarge = errors.New("upstream: response header too large")

// roundTrip is one request and its response on one connection. It is also
// the response's Body when there is one.
type roundTrip struct {
	t    *Transport
	c    *conn
	req  *http.Request
	ctx  context.Context
	stop func() bool // unregisters the cancellation; nil if ctx never ends

	// parties counts who still uses c: the reader (the caller, until the
	// response body ends) and, for a request with a body, the writer. The
	// last one out pools or closes c.
	parties atomic.Int32
	broken  atomic.Bool // close c instead of pooling it

	// The writer's outcome, for a request with a body: werr is set before
	// wdone is closed.
	wdone chan struct{}
	werr  error
	cont  chan bool // 100-continue: the reader's verdict, true = send the body

	body  io.ReadCloser // http.ReadResponse's body
	state atomic.Int32  // of body: open, then one of the others
	rerr  error         // the body's error, once failed
}

const (
	bodyOpen = iota
	bodyEOF
	bodyFailed
	bodyClosed
)

// exchange sends req on c and reads the response header. On an error c is
// closed (or left to the writer to close); a retryError means req may be
// sent again on another connection.
func exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	t := c.pool.t
	rt := &roundTrip{t: t, c: c, req: req, ctx: ctx}
	c.begin()
	if ctx.Done() != nil {
		// No goroutine waits for the context: when it ends (cancelled, or
		// its deadline passed) cancel sets a past deadline on the
		// connection, which wakes the reads and writes blocked on it.
		rt.stop = context.AfterFunc(ctx, c.cancelFn)
	}
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: c.reused, WasIdle: c.reused})
	}
	startR, startW := c.nread, c.nwrite

	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		// The body is written beside the reading of the response: an
		// upstream may answer (413, 401) before it has read it all.
		rb := &requestBody{rc: req.Body}
		if t.ExpectContinueTimeout > 0 && expectsContinue(req) && !probed(req) {
			rt.cont = make(chan bool, 1)
			rb.cont, rb.wait = rt.cont, t.ExpectContinueTimeout
		}
		out := *req // RoundTrip must not modify req
		out.Body = rb
		rt.wdone = make(chan struct{})
		rt.parties.Store(2)
		go rt.write(&out, rb)
	} else {
		rt.parties.Store(1)
		err := req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			rt.done(true)
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if c.reused && c.nwrite == startW && c.nread == startR {
				return nil, retryError{err}
			}
			return nil, err
		}
		c.startHeaderTimer(t.ResponseHeaderTimeout)
	}

	resp, err := rt.readResponse(trace)
	if err != nil {
		rt.verdict(false)
		rt.done(true)
		return nil, rt.readError(err, hasBody, startR)
	}

	keep := !resp.Close && !wantsClose(req) && resp.StatusCode >= 200
	if resp.StatusCode == http.StatusSwitchingProtocols && isProtocolSwitch(resp.Header) {
		if hasBody {
			<-rt.wdone // the upstream took the whole request before switching
			if rt.werr != nil {
				rt.done(true)
				return nil, rt.werr
			}
		}
		resp.Body = &switched{rt: rt}
		return resp, nil
	}
	if !keep {
		rt.broken.Store(true)
	}
	if resp.Body == http.NoBody {
		rt.done(false)
		return resp, nil
	}
	rt.body = resp.Body
	resp.Body = rt
	return resp, nil
}

// readResponse reads responses until a final one (or a 101), reporting the
// 1xx ones to trace. The header timer, once started, bounds it.
func (rt *roundTrip) readResponse(trace *httptrace.ClientTrace) (*http.Response, error) {
	c := rt.c
	maxHeader := rt.t.maxHeader()
	c.limit = maxHeader
	// Wait for the first byte apart, as http.Transport does: a connection
	// the upstream closed before answering reads as io.EOF, not as a
	// malformed response.
	if _, err := c.br.Peek(1); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, rt.req)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code == http.StatusContinue && rt.cont != nil {
			if trace != nil && trace.Got100Continue != nil {
				trace.Got100Continue()
			}
			rt.verdict(true)
		}
		if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
					return nil, err
				}
				// The hook's owner bounds how many it takes; each header
				// is bounded on its own.
				c.limit = maxHeader
			}
			continue
		}
		// A final answer before 100 Continue: send the body anyway if the
		// connection is to be kept (the upstream reads it before the next
		// request), not if it is to be closed (http.Transport's rule).
		rt.verdict(!resp.Close && !wantsClose(rt.req))
		c.limit = unlimited
		c.headersIn(rt.t.ResponseHeaderTimeout)
		return resp, nil
	}
}

// verdict tells a body waiting for 100 Continue whether to go, once. The
// channel has room for it: it never blocks, even when the body has stopped
// waiting.
func (rt *roundTrip) verdict(send bool) {
	if rt.cont != nil {
		rt.cont <- send
		rt.cont = nil
	}
}

// readError is the error RoundTrip returns for a failed response read.
func (rt *roundTrip) readError(err error, hasBody bool, startR int64) error {
	c := rt.c
	if rt.ctx.Err() != nil {
		return context.Cause(rt.ctx)
	}
	if hasBody {
		select {
		case <-rt.wdone:
			if rt.werr != nil {
				return rt.werr // the cause; the read failed because of it
			}
		default:
		}
	}
	if errors.Is(err, errHeaderTooLarge) || c.limit <= 0 {
		return fmt.Errorf("upstream: response header exceeded %d bytes: %w", rt.t.maxHeader(), errHeaderTooLarge)
	}
	if c.timedOut(err) {
		return errHeaderTimeout
	}
	if !hasBody && c.reused && c.nread == startR && replayable(rt.req) {
		return retryError{err}
	}
	return err
}

// write is the writer of a request with a body.
func (rt *roundTrip) write(req *http.Request, rb *requestBody) {
	err := req.Write(rt.c.bw)
	if err == nil {
		err = rt.c.bw.Flush()
	}
	switch {
	case err == nil:
		rt.c.startHeaderTimer(rt.t.ResponseHeaderTimeout)
		// Done before wdone: a reader waiting on wdone at the end of the
		// response is then the last party, and pools the connection
		// before its caller's next request.
		rt.done(false)
		close(rt.wdone)
	case rb.held:
		// The upstream answered without 100 Continue and will close: the
		// body stays unsent, and the connection can serve no other request.
		rt.broken.Store(true)
		rt.done(false)
		close(rt.wdone)
	case rb.err != nil:
		// The caller's body failed: the upstream would wait for the rest.
		rt.werr = rb.err
		close(rt.wdone)
		rt.done(true)
	default:
		// The connection failed, as it does when an upstream answers
		// early (413, 401) and closes without reading the whole body. The
		// reader still gets that answer if it came; the connection is
		// dead, so the reader's own reads end without closing it here.
		rt.werr = err
		rt.broken.Store(true)
		rt.done(false)
		close(rt.wdone)
	}
}

// done is called once by each party when it stops using the connection;
// fail closes it at once (waking the other party).
func (rt *roundTrip) done(fail bool) {
	if fail {
		rt.broken.Store(true)
		rt.c.close()
	}
	if rt.parties.Add(-1) > 0 {
		return
	}
	canceled := rt.stop != nil && !rt.stop()
	c := rt.c
	if canceled || rt.broken.Load() || c.sawEOF || c.br.Buffered() > 0 {
		// Bytes after the response are never taken for the next one.
		c.close()
		return
	}
	c.pool.put(c)
}

// Read reads the response body; at its end the connection is released.
func (rt *roundTrip) Read(p []byte) (int, error) {
	switch rt.state.Load() {
	case bodyEOF:
		return 0, io.EOF
	case bodyFailed:
		return 0, rt.rerr
	case bodyClosed:
		return 0, errClosedBody
	}
	n, err := rt.body.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		if rt.state.CompareAndSwap(bodyOpen, bodyEOF) {
			rt.awaitWriter()
			rt.done(false)
		}
	default:
		if rt.ctx.Err() != nil {
			err = context.Cause(rt.ctx)
		}
		rt.rerr = err
		if rt.state.CompareAndSwap(bodyOpen, bodyFailed) {
			rt.done(true)
		}
	}
	return n, err
}

// awaitWriter gives a request body still being written when the response
// has ended (the upstream answered first) a moment to finish, so the
// connection is back in the pool for the caller's next request, as
// http.Transport does. Past that moment the writer pools it when done.
func (rt *roundTrip) awaitWriter() {
	if rt.wdone == nil {
		return
	}
	select {
	case <-rt.wdone:
		return
	default:
	}
	timer := time.NewTimer(writerGrace)
	select {
	case <-rt.wdone:
	case <-timer.C:
	}
	timer.Stop()
}

// writerGrace is http.Transport's maxWriteWaitBeforeConnReuse.
const writerGrace = 50 * time.Millisecond

// Close ends the response; before its end, by closing the connection (a
// proxy must not read what its client no longer wants).
func (rt *roundTrip) Close() error {
	if rt.state.CompareAndSwap(bodyOpen, bodyClosed) {
		rt.done(true)
	}
	return nil
}

// requestBody is the request's body as the writer reads it: it waits for
// 100 Continue when asked to, and tells the caller's body errors from the
// connection's.
type requestBody struct {
	rc   io.ReadCloser
	cont <-chan bool   // the reader's verdict on 100 Continue
	wait time.Duration // > 0: wait this long for the verdict first
	held bool          // the upstream said not to send it
	err  error         // rc's read error
}

var errBodyHeld = errors.New("upstream: request body not sent: the upstream answered first")

func (b *requestBody) Read(p []byte) (int, error) {
	if b.wait > 0 {
		// Request.Write has flushed the header: it does so before reading
		// any body it does not know to be in memory.
		timer := time.NewTimer(b.wait)
		b.wait = 0
		select {
		case send := <-b.cont:
			timer.Stop()
			if !send {
				b.held = true
				return 0, errBodyHeld
			}
		case <-timer.C:
			// No word from the upstream: send it, as http.Transport does.
			// The reader's verdict, when it comes, finds room in cont.
		}
	}
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *requestBody) Close() error { return b.rc.Close() }

// switched is the Body of a 101 Switching Protocols response: the
// connection itself, never pooled.
type switched struct {
	rt     *roundTrip
	closed atomic.Bool
}

var _ io.ReadWriteCloser = (*switched)(nil)

// Read reads what the upstream sends, starting with what was buffered
// behind the 101 response.
func (s *switched) Read(p []byte) (int, error) { return s.rt.c.br.Read(p) }

// Write writes to the upstream.
func (s *switched) Write(p []byte) (int, error) { return s.rt.c.nc.Write(p) }

// Close closes the connection.
func (s *switched) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.rt.stop != nil {
		s.rt.stop()
	}
	return s.rt.c.nc.Close()
}

// probed reports whether Request.Write reads a byte of req's body before
// writing its header, to tell an empty body from a chunked one: a GET or
// similar with a body of unknown length. Waiting for 100 Continue inside
// that read would stall the header, so such a body is sent at once.
func probed(req *http.Request) bool {
	if req.ContentLength > 0 {
		return false
	}
	switch req.Method {
	case "", "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
		return true
	}
	return false
}

func asNetError(err error, target *net.Error) bool { return errors.As(err, target) }
