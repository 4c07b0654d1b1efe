package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// byConn answers every request with the index of the connection it came
// on, so a test sees which pooled connection served it.
func byConn(c *sconn) {
	for c.next() {
		body := fmt.Sprint(c.idx)
		if !c.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)) {
			return
		}
	}
}

func get(t *testing.T, rt http.RoundTripper, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return string(b)
}

// waitClosed waits until the server has seen connection idx end.
func (s *rawServer) waitClosed(t *testing.T, idx int) {
	t.Helper()
	if s.seenClosed == nil {
		s.seenClosed = make(map[int]bool)
	}
	for !s.seenClosed[idx] {
		s.seenClosed[<-s.closed] = true
	}
}

func TestPoolIsLastInFirstOut(t *testing.T) {
	srv := newRawServer(t, byConn)
	tr := &Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()

	// Two responses open at once take two connections.
	a, b := get(t, tr, srv.url), get(t, tr, srv.url)
	if got := readBody(t, a) + readBody(t, b); got != "01" {
		t.Fatalf("got bodies %q; want \"01\"", got)
	}
	// Connection 1 went back last: it serves next, and again.
	for range 3 {
		if got := readBody(t, get(t, tr, srv.url)); got != "1" {
			t.Fatalf("served by connection %s; want 1, the most recently used", got)
		}
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Errorf("server accepted %d connections; want 2", n)
	}
}

func TestMaxIdleConnsPerHost(t *testing.T) {
	srv := newRawServer(t, byConn)
	tr := &Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()

	resps := []*http.Response{get(t, tr, srv.url), get(t, tr, srv.url), get(t, tr, srv.url)}
	for _, r := range resps {
		readBody(t, r)
	}
	// The first back is kept; the other two are closed.
	srv.waitClosed(t, 1)
	srv.waitClosed(t, 2)
	if got := readBody(t, get(t, tr, srv.url)); got != "0" {
		t.Errorf("served by connection %s; want 0, the one kept", got)
	}
	if n := srv.accepted.Load(); n != 3 {
		t.Errorf("server accepted %d connections; want 3", n)
	}
}

// fakeClock is a settable clock for the idle timeout.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestIdleConnTimeout(t *testing.T) {
	srv := newRawServer(t, byConn)
	clock := &fakeClock{t: time.Now()}
	// The real timer (an hour) never fires in the test; the fake clock
	// decides what has expired.
	tr := &Transport{IdleConnTimeout: time.Hour, now: clock.now}
	defer tr.CloseIdleConnections()

	readBody(t, get(t, tr, srv.url))
	clock.add(59 * time.Minute)
	if got := readBody(t, get(t, tr, srv.url)); got != "0" {
		t.Fatalf("served by connection %s; want 0, idle less than the timeout", got)
	}
	clock.add(time.Hour)
	if got := readBody(t, get(t, tr, srv.url)); got != "1" {
		t.Fatalf("served by connection %s; want a new one, 1", got)
	}
	srv.waitClosed(t, 0) // the expired one was closed, not left open

	// The sweep closes expired connections with no request to find them.
	clock.add(time.Hour)
	tr.pool(mustURL(t, srv.url)).sweep()
	srv.waitClosed(t, 1)
}

func TestCloseIdleConnections(t *testing.T) {
	srv := newRawServer(t, byConn)
	fallback := &recordingRT{}
	tr := &Transport{Fallback: fallback}
	readBody(t, get(t, tr, srv.url))
	tr.CloseIdleConnections()
	srv.waitClosed(t, 0)
	if !fallback.closedIdle {
		t.Error("the fallback's idle connections were not closed")
	}
	if got := readBody(t, get(t, tr, srv.url)); got != "1" {
		t.Errorf("served by connection %s; want a new one, 1", got)
	}
	tr.CloseIdleConnections()
}

// An upstream closes an idle keep-alive connection (its own idle timeout):
// the next request, even one that may not be retried, goes to a new
// connection instead of failing on the dead one.
func TestUpstreamClosedIdleConnection(t *testing.T) {
	srv := newRawServer(t, func(c *sconn) {
		if c.idx == 0 {
			if c.next() {
				c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			return // closes the connection, as if idle too long
		}
		byConn(c)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	readBody(t, get(t, tr, srv.url))
	srv.waitClosed(t, 0)

	req, _ := http.NewRequest("POST", srv.url, strings.NewReader("not idempotent"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST after the upstream closed the idle connection: %v", err)
	}
	if got := readBody(t, resp); got != "1" {
		t.Errorf("served by connection %s; want 1", got)
	}
}

// An upstream sends bytes on an idle connection (a late 408, a stray
// response): the connection is dropped, not read as the next answer.
func TestUnsolicitedBytesOnIdleConnection(t *testing.T) {
	sent := make(chan struct{})
	srv := newRawServer(t, func(c *sconn) {
		if c.idx == 0 {
			if c.next() {
				c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				<-sent // the client has read the response: the connection is idle
				c.write("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				close(sent)
				c.drain()
			}
			return
		}
		byConn(c)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	readBody(t, get(t, tr, srv.url))
	sent <- struct{}{}
	<-sent
	req, _ := http.NewRequest("POST", srv.url, strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); got != "1" {
		t.Errorf("served by connection %s; want 1, not the 408 left on connection 0", got)
	}
}

func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		body bool // cancel while reading the body, not waiting for the header
	}{
		{name: "waiting for the header"},
		{name: "reading the body", body: true},
	} {
		for name, rt := range transports() {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				got := make(chan struct{})
				srv := newRawServer(t, func(c *sconn) {
					if !c.next() {
						return
					}
					if tc.body {
						c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
					} else {
						close(got)
					}
					c.drain() // until the client closes: cancellation must close
				})
				defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.url, nil)
				if !tc.body {
					go func() { <-got; cancel() }()
				}
				resp, err := rt.RoundTrip(req)
				if tc.body {
					if err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(resp.Body, make([]byte, 3)); err != nil {
						t.Fatal(err)
					}
					cancel() // the rest of the body never comes
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if !errors.Is(err, context.Canceled) {
					t.Errorf("got %v; want context.Canceled", err)
				}
				srv.waitClosed(t, 0)
			})
		}
	}
}

func transports() map[string]http.RoundTripper {
	return map[string]http.RoundTripper{"stdlib": stdTransport(0, 0), "upstream": &Transport{}}
}

func TestRequestRefusedBeforeDialing(t *testing.T) {
	srv := newRawServer(t, byConn)
	tr := &Transport{}
	for _, tc := range []struct {
		name string
		mod  func(r *http.Request)
		want string
	}{
		{"CRLF in a value", func(r *http.Request) { r.Header["X-A"] = []string{"a\r\nX-Auth-Request-User: admin"} }, "invalid header field value"},
		{"bad name", func(r *http.Request) { r.Header["X A:"] = []string{"a"} }, "invalid header field name"},
		{"bad trailer", func(r *http.Request) { r.Trailer = http.Header{"X-T": {"\n"}} }, "invalid trailer"},
		{"bad method", func(r *http.Request) { r.Method = "GET /x HTTP/1.1\r\n" }, "invalid method"},
		{"no host", func(r *http.Request) { r.URL.Host = "" }, "no Host"},
		{"nil header", func(r *http.Request) { r.Header = nil }, "nil Request.Header"},
		{"scheme", func(r *http.Request) { r.URL.Scheme = "ftp" }, "unsupported protocol scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeRecorder{Reader: strings.NewReader("b")}
			req, _ := http.NewRequest("POST", srv.url, body)
			tc.mod(req)
			_, err := tr.RoundTrip(req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error with %q", err, tc.want)
			}
			if !body.closed {
				t.Error("the request body was not closed")
			}
		})
	}
	if n := srv.accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections; want 0", n)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

type recordingRT struct {
	got        *http.Request
	closedIdle bool
}

func (r *recordingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: req}, nil
}

func (r *recordingRT) CloseIdleConnections() { r.closedIdle = true }

func TestHTTPSGoesToFallback(t *testing.T) {
	fb := &recordingRT{}
	tr := &Transport{Fallback: fb}
	req, _ := http.NewRequest("GET", "https://127.0.0.1:1/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 299 || fb.got != req {
		t.Fatalf("got %v, %v; want the fallback's answer", resp, err)
	}
	if _, err := (&Transport{}).RoundTrip(req); err == nil {
		t.Error("https without a fallback: got no error")
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	req, _ := http.NewRequest("GET", "http://"+addr, nil)
	_, err = (&Transport{DialTimeout: time.Minute}).RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("got %v; want a dial error", err)
	}
}

// Through httputil.ReverseProxy, what the proxy needs of its transport:
// streaming, trailers, 1xx forwarded, upgrades.
func TestReverseProxy(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-release // the first event must arrive while the stream is open
			io.WriteString(w, "data: second\n\n")
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "page")
		case "/upload":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d %s", len(b), r.Header.Get("Te"))
		case "/ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			line, _ := brw.ReadString('\n')
			io.WriteString(conn, "echo "+line)
		}
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	tr := &Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
	})
	defer proxy.Close()
	client := proxy.Client()

	t.Run("streaming", func(t *testing.T) {
		resp, err := client.Get(proxy.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); line != "data: first\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		close(release)
		rest, _ := io.ReadAll(br)
		if string(rest) != "\ndata: second\n\n" {
			t.Errorf("rest %q", rest)
		}
	})
	t.Run("trailers", func(t *testing.T) {
		resp, err := client.Get(proxy.URL + "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp); b != "body" || resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("got %q, trailer %v; want \"body\", X-Sum 42", b, resp.Trailer)
		}
	})
	t.Run("103 forwarded", func(t *testing.T) {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", proxy.URL+"/hints", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp); b != "page" || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" {
			t.Errorf("got %q, 1xx %q", b, hints)
		}
	})
	t.Run("request body", func(t *testing.T) {
		body := strings.Repeat("u", 300000)
		req, _ := http.NewRequest("POST", proxy.URL+"/upload", struct{ io.Reader }{strings.NewReader(body)})
		req.Header.Set("Te", "trailers")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp); b != "300000 trailers" {
			t.Errorf("got %q", b)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(proxy.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("got %v, %v; want 101", resp, err)
		}
		io.WriteString(conn, "hello\n")
		if line, _ := br.ReadString('\n'); line != "echo hello\n" {
			t.Errorf("got %q through the upgraded connection", line)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
