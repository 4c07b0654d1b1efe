package upstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// rawServer is an upstream on 127.0.0.1 that answers with literal bytes,
// so a test can send what no well-behaved server would. Each accepted
// connection runs serve on its own goroutine.
type rawServer struct {
	ln       net.Listener
	url      string
	accepted atomic.Int32
	closed   chan int // the index of each connection whose serve returned
	// seenClosed: what waitClosed took from closed (the test's goroutine only).
	seenClosed map[int]bool
	wg         sync.WaitGroup

	served atomic.Int32 // for serve functions that count requests across connections

	mu     sync.Mutex
	events []string // what serve logged
}

// sconn is the server's side of one connection.
type sconn struct {
	net.Conn
	srv *rawServer
	idx int           // 0 for the first connection accepted
	br  *bufio.Reader // reads requests
	n   int           // requests read on this connection so far
	req *http.Request // the last one, its body read
	got []byte        // its body
}

func newRawServer(t testing.TB, serve func(sc *sconn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, url: "http://" + ln.Addr().String(), closed: make(chan int, 1000)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			idx := int(s.accepted.Add(1)) - 1
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { s.closed <- idx }()
				defer c.Close()
				serve(&sconn{Conn: c, srv: s, idx: idx, br: bufio.NewReader(c)})
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// close stops accepting and waits for every connection's serve to return:
// the test must have closed its side of them.
func (s *rawServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

// next reads the next request and its whole body; false at the end of the
// connection.
func (c *sconn) next() bool {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return false
	}
	c.got, err = io.ReadAll(req.Body)
	if err != nil {
		return false
	}
	c.req = req
	c.n++
	return true
}

// nextHeader reads the next request's header only.
func (c *sconn) nextHeader() bool {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return false
	}
	c.req, c.got = req, nil
	c.n++
	return true
}

func (c *sconn) write(s string) bool {
	_, err := io.WriteString(c.Conn, s)
	return err == nil
}

// drain reads until the client closes the connection.
func (c *sconn) drain() { io.Copy(io.Discard, c.br) }

// always answers every request with resp.
func always(resp string) func(*sconn) {
	return func(c *sconn) {
		for c.next() {
			if !c.write(resp) {
				return
			}
		}
	}
}

// once answers the first request of each connection with resp, then
// closes it.
func once(resp string) func(*sconn) {
	return func(c *sconn) {
		if c.next() {
			c.write(resp)
		}
	}
}
