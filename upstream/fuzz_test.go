package upstream

import (
	"reflect"
	"sync"
	"testing"
)

// FuzzResponse feeds arbitrary bytes to both transports as the answer to a
// GET, followed on the same connection by a well-formed second response
// ("NEXT") and the end of the stream. The properties:
//   - Transport sees what http.Transport sees (status, header, body,
//     trailer, 1xx responses, error class): the parsing is net/http's in
//     both, and the connection handling must not change what it yields;
//   - the next request through Transport gets its own answer ("fresh",
//     from a new connection), never the bytes left behind on the first
//     connection: whatever the first response was, a connection with
//     stray bytes is not reused;
//   - nothing panics.
func FuzzResponse(f *testing.F) {
	seeds := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 42\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
		"HTTP/1.1 101 Switching Protocols\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil the end",
		"HTTP/1.1 200 OK\r\n\r\nuntil the end",
		"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n", // the body is exactly the next response
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"hello",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	// One server for every input: connection by connection, the first
	// request's path says which answer to write.
	var mu sync.Mutex
	var data []byte
	srv := newRawServer(f, func(c *sconn) {
		for c.next() {
			if c.req.URL.Path != "/first" {
				if !c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh") {
					return
				}
				continue
			}
			mu.Lock()
			d := data
			mu.Unlock()
			c.Write(d)
			c.write(nextResponse)
			c.Conn.(interface{ CloseWrite() error }).CloseWrite()
			c.drain()
			return
		}
	})

	f.Fuzz(func(t *testing.T, b []byte) {
		mu.Lock()
		data = b
		mu.Unlock()
		first := reqSpec{}
		std := stdTransport(0, 0)
		want := do(t, std, srv.url+"/first", first)
		std.CloseIdleConnections()

		ours := &Transport{MaxIdleConnsPerHost: 4, MaxResponseHeaderBytes: maxHeaderInTest}
		defer ours.CloseIdleConnections()
		got := do(t, ours, srv.url+"/first", first)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("first response:\n got %+v\nwant %+v (http.Transport)", got, want)
		}
		next := do(t, ours, srv.url+"/second", reqSpec{})
		if next.Err != "" || next.Status != 200 || next.Body != "fresh" {
			t.Fatalf("second response: %+v; want 200 \"fresh\" from a new connection", next)
		}
	})
}

// nextResponse follows the fuzzed bytes on the connection.
const nextResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nNEXT"
