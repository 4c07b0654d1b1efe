package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestBodies: a small body of unknown length is read whole before
// the upstream is asked (so a client dribbling it holds no upstream
// request), and arrives with its length; a larger one streams, whole.
func TestRequestBodies(t *testing.T) {
	f := newFixture(t, nil)
	var gotLen int64
	var gotBody string
	var gotTE []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotLen, gotBody, gotTE = r.ContentLength, string(b), r.TransferEncoding
	}))
	t.Cleanup(up.Close)
	upURL, _ := f.srv.routes[0].Upstream.Parse(up.URL)
	f.srv.routes[0].Upstream = upURL
	f.srv.routes[0].proxy = f.srv.reverseProxy(f.srv.routes[0])
	cookie := f.plant(t)
	for _, tt := range []struct {
		name     string
		size     int
		wantLen  int64
		chunkedU bool
	}{
		{"empty", 0, 0, false},
		{"small, unknown length", 1000, 1000, false},
		{"at the limit", bufferedBodyMax, bufferedBodyMax, false},
		{"over the limit streams", bufferedBodyMax + 1, -1, true},
		{"large streams", 1 << 20, -1, true},
	} {
		body := strings.Repeat("b", tt.size)
		// An io.Reader that is not a *strings.Reader: the length is unknown,
		// as with a chunked upload.
		req := httptest.NewRequest("POST", "https://app.example.com/upload", io.MultiReader(strings.NewReader(body)))
		req.ContentLength = -1
		req.Header.Set("Cookie", "gatehouse="+cookie)
		req.Header.Set("Origin", "https://app.example.com")
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", tt.name, rec.Code, rec.Body)
		}
		if gotBody != body {
			t.Errorf("%s: upstream got %d bytes; want %d", tt.name, len(gotBody), len(body))
		}
		if gotLen != tt.wantLen || (len(gotTE) > 0) != tt.chunkedU {
			t.Errorf("%s: upstream saw Content-Length %d, Transfer-Encoding %v; want %d, chunked %v", tt.name, gotLen, gotTE, tt.wantLen, tt.chunkedU)
		}
	}
}

// TestUpstreamInvalidStatus: an upstream answering a status below 100 gets
// the client a 502, not a panic in the server.
func TestUpstreamInvalidStatus(t *testing.T) {
	f := newFixture(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n")
			}()
		}
	}()
	u, _ := f.srv.routes[0].Upstream.Parse("http://" + ln.Addr().String())
	f.srv.routes[0].Upstream = u
	f.srv.routes[0].proxy = f.srv.reverseProxy(f.srv.routes[0])
	if got := f.get(f.plant(t)).Code; got != http.StatusBadGateway {
		t.Fatalf("got %d; want 502", got)
	}
}
