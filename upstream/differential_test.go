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
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

var errBodyFailed = errors.New("the client's body failed")

// The differential test: every case is run once through http.Transport and
// once through Transport, each against its own raw server that writes the
// case's literal bytes, and the two must agree on everything the caller
// sees (status, header, body, trailer, 1xx responses, error class) and on
// what the server sees (its log). The number of connections the server
// accepted shows that the pool reuses what it may and discards what it
// must.

// reqSpec is one request of a case.
type reqSpec struct {
	method  string      // default GET
	header  http.Header // default none
	body    string      // default none
	chunked bool        // send body with unknown length
	// failBody: reading the body fails after its bytes.
	failBody bool
	// use reads the response body; nil = read it all.
	use func(resp *http.Response) (string, error)
}

// outcome is what the caller of RoundTrip sees.
type outcome struct {
	Status  int
	Header  http.Header
	Body    string
	BodyErr string
	Trailer http.Header
	Info    []string // 1xx responses reported to httptrace
	Err     string   // class of RoundTrip's error
}

type diffCase struct {
	name  string
	reqs  []reqSpec // default: two GETs
	serve func(sc *sconn)
	// conns is how many connections the server must accept from
	// Transport for reqs; 0 = not checked (a race decides it).
	conns int
	// stdRacy: http.Transport's answers after the first request depend on
	// a race between its goroutines (it may hand out a connection before
	// its read goroutine has seen the stray bytes on it), so it is run
	// with a new connection for each request.
	stdRacy bool
	// want, if set, is what each request must see, instead of what
	// http.Transport sees: where even its first answer is a race.
	want []outcome
	// stdConns, if set, is what http.Transport accepts where it differs
	// on purpose.
	stdConns int

	headerTimeout   time.Duration // ResponseHeaderTimeout; default none
	continueTimeout time.Duration // ExpectContinueTimeout; default 1h (never)
}

const maxHeaderInTest = 64 << 10

func diffCases() []diffCase {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	get := reqSpec{}
	post := func(body string) reqSpec { return reqSpec{method: "POST", body: body} }
	upgradeReq := reqSpec{
		header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}},
		use: func(resp *http.Response) (string, error) {
			rwc, isRWC := resp.Body.(io.ReadWriteCloser)
			if !isRWC {
				return "", fmt.Errorf("101 body is a %T, not an io.ReadWriteCloser", resp.Body)
			}
			hello := make([]byte, 5)
			if _, err := io.ReadFull(rwc, hello); err != nil {
				return "", err
			}
			if _, err := io.WriteString(rwc, "ping"); err != nil {
				return "", err
			}
			rest, err := io.ReadAll(rwc)
			return string(hello) + "|" + string(rest), err
		},
	}
	expect := func(body string) reqSpec {
		return reqSpec{method: "POST", body: body, header: http.Header{"Expect": {"100-continue"}}}
	}
	// staleSecond answers the first request of connection 0, then closes it
	// on reading the second without answering: a keep-alive connection
	// the server dropped just as it was reused.
	staleSecond := func(c *sconn) {
		for c.next() {
			if c.idx == 0 && c.n == 2 {
				return
			}
			if c.req.Method == "HEAD" {
				c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
				continue
			}
			c.write(ok)
		}
	}
	return []diffCase{
		{name: "content-length", reqs: []reqSpec{get, get, get}, conns: 1,
			serve: always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok")},
		{name: "chunked", conns: 1,
			serve: always("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n")},
		{name: "trailers", conns: 1,
			serve: always("HTTP/1.1 200 OK\r\nTrailer: X-Sum, X-Late\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 42\r\nX-Late: yes\r\nX-Unannounced: 1\r\n\r\n")},
		{name: "100 without Expect", conns: 1,
			serve: always("HTTP/1.1 100 Continue\r\n\r\n" + ok)},
		{name: "103 early hints", conns: 1,
			serve: always("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\n\r\n" + ok)},
		{name: "204", conns: 1, serve: always("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n")},
		{name: "204 with a bogus body", conns: 2, stdRacy: true,
			serve: always("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")},
		{name: "304", conns: 1, serve: always("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")},
		{name: "304 with a bogus chunked body", conns: 2, stdRacy: true,
			serve: always("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")},
		{name: "Connection: close", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")},
		// RFC 9112 section 9.6: a client that sends "close" closes the
		// connection after the response. http.Transport looks only at
		// Request.Close and would keep it.
		{name: "request says Connection: close", conns: 2, stdConns: 1,
			reqs:  []reqSpec{{header: http.Header{"Connection": {"close"}}}, get},
			serve: always(ok)},
		{name: "early EOF in a sized body", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")},
		{name: "early EOF in a chunked body", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")},
		{name: "body longer than Content-Length", conns: 2, stdRacy: true,
			serve: always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")},
		{name: "a second response behind the first", conns: 2, stdRacy: true,
			serve: func(c *sconn) {
				for c.next() {
					if c.idx == 0 {
						c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
						continue
					}
					c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
				}
			}},
		{name: "a second response behind a large first", conns: 2, stdRacy: true,
			serve: func(c *sconn) {
				for c.next() {
					if c.idx == 0 {
						c.write("HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + strings.Repeat("a", 9000) +
							"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
						continue
					}
					c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
				}
			}},
		{name: "Content-Length and Transfer-Encoding", conns: 1,
			serve: always("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")},
		{name: "two different Content-Lengths", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!")},
		{name: "upgrade, both ways", reqs: []reqSpec{upgradeReq, get}, conns: 2,
			serve: func(c *sconn) {
				for c.nextHeader() {
					if c.req.Header.Get("Upgrade") == "" {
						c.write(ok)
						continue
					}
					c.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nHELLO")
					buf := make([]byte, 4)
					if _, err := io.ReadFull(c.br, buf); err != nil {
						return
					}
					c.write("pong:" + string(buf))
					return
				}
			}},
		{name: "101 without Upgrade", conns: 2, serve: always("HTTP/1.1 101 Switching Protocols\r\n\r\n")},
		{name: "HEAD with Content-Length", conns: 1,
			reqs: []reqSpec{{method: "HEAD"}, {method: "HEAD"}, get},
			serve: func(c *sconn) {
				for c.next() {
					if c.req.Method == "HEAD" {
						c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
						continue
					}
					c.write(ok)
				}
			}},
		{name: "slow response header", reqs: []reqSpec{get}, conns: 1, headerTimeout: 20 * time.Millisecond,
			serve: func(c *sconn) {
				c.next()
				c.drain() // never answers; ends when the client gives up
			}},
		{name: "stale keep-alive connection, GET retried", conns: 2, serve: staleSecond},
		{name: "stale keep-alive connection, HEAD retried", conns: 2,
			reqs: []reqSpec{{method: "HEAD"}, {method: "HEAD"}}, serve: staleSecond},
		{name: "stale keep-alive connection, POST not retried", conns: 1,
			reqs: []reqSpec{{method: "POST"}, {method: "POST"}}, serve: staleSecond},
		{name: "stale keep-alive connection, POST with Idempotency-Key retried", conns: 2,
			reqs:  []reqSpec{{method: "POST"}, {method: "POST", header: http.Header{"Idempotency-Key": {"k1"}}}},
			serve: staleSecond},
		{name: "stale keep-alive connection, POST with a body not retried", conns: 1,
			reqs: []reqSpec{post("a"), post("b")}, serve: staleSecond},
		{name: "HTTP/1.0 until close", conns: 2, serve: once("HTTP/1.0 200 OK\r\n\r\nall of it")},
		{name: "HTTP/1.0 keep-alive", conns: 1,
			serve: always("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")},
		{name: "HTTP/1.1 until close", conns: 2, serve: once("HTTP/1.1 200 OK\r\n\r\nuntil close")},
		{name: "request body", conns: 1, reqs: []reqSpec{post("hello"), post(strings.Repeat("b", 100000))},
			serve: echo},
		{name: "request body of unknown length", conns: 1,
			reqs:  []reqSpec{{method: "POST", body: "hello", chunked: true}, {method: "PUT", body: strings.Repeat("c", 70000), chunked: true}},
			serve: echo},
		{name: "Expect: 100-continue", conns: 1, reqs: []reqSpec{expect("hello"), expect("again")},
			serve: func(c *sconn) {
				for c.nextHeader() {
					c.log("expect %q", c.req.Header.Get("Expect"))
					c.write("HTTP/1.1 100 Continue\r\n\r\n")
					body, _ := io.ReadAll(c.req.Body)
					c.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
				}
			}},
		{name: "Expect: 100-continue refused, closing", conns: 2, reqs: []reqSpec{expect("secret"), expect("secret")},
			serve: func(c *sconn) {
				if !c.nextHeader() {
					return
				}
				c.write("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 4\r\n\r\nnope")
				c.Conn.(*net.TCPConn).CloseWrite()
				rest, _ := io.ReadAll(c.br)
				c.log("body bytes after the refusal: %d", len(rest))
			}},
		// The answer comes before the body is written: whether the
		// connection is back in the pool for the next request depends, in
		// both transports, on the writer finishing within a grace period.
		{name: "Expect: 100-continue refused, keep-alive", reqs: []reqSpec{expect("one"), expect("two")},
			serve: func(c *sconn) {
				for c.nextHeader() {
					c.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
					body, _ := io.ReadAll(c.req.Body)
					c.log("body %q", body)
					if c.srv.served.Add(1) == 2 {
						return // the client may pool the connection after it stops looking
					}
				}
			}},
		{name: "Expect: 100-continue unanswered", conns: 1, continueTimeout: 10 * time.Millisecond,
			reqs: []reqSpec{expect("late")}, serve: echo},
		{name: "early answer, body read after", reqs: []reqSpec{post(strings.Repeat("x", 1<<20)), get},
			serve: func(c *sconn) {
				for c.nextHeader() {
					c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
					n, _ := io.Copy(io.Discard, c.req.Body)
					c.log("read %d body bytes after answering", n)
					if c.srv.served.Add(1) == 2 {
						return
					}
				}
			}},
		{name: "early answer, body unread, close", reqs: []reqSpec{post(strings.Repeat("x", 8<<20)), get},
			// http.Transport returns the answer or the write error,
			// whichever its goroutines see first.
			conns: 2, want: []outcome{{Status: 413, Body: "big"}, {Status: 200, Body: "ok"}},
			serve: func(c *sconn) {
				if !c.nextHeader() {
					return
				}
				if c.req.Method == "GET" {
					c.write(ok)
					return
				}
				// Closing with the body unread sends a reset; the answer
				// is already on its way.
				c.write("HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig")
			}},
		{name: "request body fails", reqs: []reqSpec{{method: "POST", body: "partial", failBody: true}, get}, conns: 2,
			serve: func(c *sconn) {
				for c.next() {
					c.write(ok)
				}
			}},
		{name: "status 099", conns: 2, serve: always("HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n")},
		{name: "malformed status line", conns: 2, serve: once("HTTP/1.1 OK\r\n\r\n")},
		{name: "garbage", conns: 2, serve: once("hello world\r\n\r\n")},
		{name: "header too large", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", maxHeaderInTest) + "\r\nContent-Length: 0\r\n\r\n")},
		{name: "many 1xx headers, each within the limit", conns: 1, reqs: []reqSpec{get},
			serve: always(strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: "+strings.Repeat("l", maxHeaderInTest/2)+"\r\n\r\n", 4) + ok)},
		{name: "nothing at all", conns: 2, serve: once("")},
		{name: "a bare LF line ending", conns: 1, serve: always("HTTP/1.1 200 OK\nContent-Length: 2\n\nok")},
		{name: "invalid chunk size", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n")},
		{name: "unsupported transfer coding", conns: 2,
			serve: once("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")},
	}
}

// echo answers each request with its body.
func echo(c *sconn) {
	for c.next() {
		c.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(c.got), c.got))
	}
}

func TestDifferential(t *testing.T) {
	for _, tc := range diffCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, conns, log := runCase(t, tc, false, func(rht, ect time.Duration) http.RoundTripper {
				return &Transport{ResponseHeaderTimeout: rht, ExpectContinueTimeout: ect,
					MaxIdleConnsPerHost: 4, MaxResponseHeaderBytes: maxHeaderInTest}
			})
			if conns != tc.conns && tc.conns != 0 {
				t.Errorf("server accepted %d connections; want %d", conns, tc.conns)
			}
			if tc.want != nil {
				// http.Transport's answer is a race here: the expectations
				// are the case's own.
				for i, w := range tc.want {
					if o := got[i]; o.Status != w.Status || o.Body != w.Body || o.Err != w.Err {
						t.Errorf("request %d: got %+v; want %+v", i, o, w)
					}
				}
				return
			}
			// Where http.Transport would race on a reused connection,
			// what it answers on a fresh connection per request is what
			// Transport must answer with its pool: stray bytes on a
			// connection never reach the next request.
			std, stdConns, stdLog := runCase(t, tc, tc.stdRacy, func(rht, ect time.Duration) http.RoundTripper {
				return stdTransport(rht, ect)
			})
			for i := range got {
				if !reflect.DeepEqual(got[i], std[i]) {
					t.Errorf("request %d:\n got %+v\nwant %+v (http.Transport)", i, got[i], std[i])
				}
			}
			if !slices.Equal(log, stdLog) {
				t.Errorf("server log:\n got %q\nwant %q (http.Transport)", log, stdLog)
			}
			want := tc.conns
			if tc.stdConns != 0 {
				want = tc.stdConns
			}
			if !tc.stdRacy && tc.conns != 0 && stdConns != want {
				t.Errorf("http.Transport: server accepted %d connections; want %d (the case is wrong)", stdConns, want)
			}
		})
	}
}

func stdTransport(rht, ect time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{}).DialContext,
		MaxIdleConnsPerHost:    4,
		ResponseHeaderTimeout:  rht,
		ExpectContinueTimeout:  ect,
		MaxResponseHeaderBytes: maxHeaderInTest,
		DisableCompression:     true,
	}
}

// runCase runs tc's requests one after the other through one transport
// against a fresh server, and returns what each request saw, how many
// connections the server accepted, and the server's log, sorted.
//
// With fresh, each request goes through a new transport.
func runCase(t *testing.T, tc diffCase, fresh bool, newRT func(rht, ect time.Duration) http.RoundTripper) ([]outcome, int, []string) {
	t.Helper()
	srv := newRawServer(t, tc.serve)
	ect := tc.continueTimeout
	if ect == 0 {
		ect = time.Hour
	}
	rt := newRT(tc.headerTimeout, ect)
	reqs := tc.reqs
	if reqs == nil {
		reqs = []reqSpec{{}, {}}
	}
	var out []outcome
	for _, spec := range reqs {
		out = append(out, do(t, rt, srv.url, spec))
		if fresh {
			rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
			rt = newRT(tc.headerTimeout, ect)
		}
	}
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	srv.close()
	return out, int(srv.accepted.Load()), srv.sortedLog()
}

// do sends one request and reads its response.
func do(t *testing.T, rt http.RoundTripper, url string, spec reqSpec) outcome {
	t.Helper()
	method := spec.method
	if method == "" {
		method = "GET"
	}
	var body io.Reader
	if spec.body != "" {
		body = strings.NewReader(spec.body)
		if spec.chunked {
			body = struct{ io.Reader }{body} // hides the length
		}
		if spec.failBody {
			body = io.MultiReader(body, iotest.ErrReader(errBodyFailed))
		}
	}
	req, err := http.NewRequest(method, url+"/x", body)
	if err != nil {
		t.Fatal(err)
	}
	if spec.chunked {
		req.ContentLength = -1
	}
	for k, v := range spec.header {
		req.Header[k] = v
	}
	var o outcome
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		o.Info = append(o.Info, fmt.Sprintf("%d %v", code, h))
		mu.Unlock()
		return nil
	}}
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), trace))
	resp, err := rt.RoundTrip(req)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		o.Err = errClass(err)
		return o
	}
	o.Status, o.Header = resp.StatusCode, resp.Header
	if spec.use != nil {
		o.Body, err = spec.use(resp)
	} else {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		o.Body = string(b)
	}
	o.BodyErr = errClass(err)
	resp.Body.Close()
	o.Trailer = resp.Trailer
	return o
}

// errClass is what the differential test compares of errors: their kind,
// not their wording, which differs between the two transports.
func errClass(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	}
	return "error"
}

func (c *sconn) log(format string, args ...any) { c.srv.logf(format, args...) }

func (s *rawServer) logf(format string, args ...any) {
	s.mu.Lock()
	s.events = append(s.events, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *rawServer) sortedLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.events))
}
