package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// pool holds the idle connections to one host:port, most recently used
// last: a connection is taken from the end (the warmest) and the ones at the
// start, idle the longest, are the first to expire.
type pool struct {
	t    *Transport
	addr string

	mu      sync.Mutex
	idle    []*conn
	timer   *time.Timer // closes expired connections
	timerOn bool
}

// get returns an idle connection that still looks open, or a new one.
func (p *pool) get(ctx context.Context) (*conn, error) {
	for {
		c := p.pop()
		if c == nil {
			break
		}
		if c.alive() {
			return c, nil
		}
		c.close()
	}
	d := net.Dialer{Timeout: p.t.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newConn(p, nc), nil
}

// pop takes the most recently used idle connection; it closes the idle
// ones instead if that one has expired (the others are older).
func (p *pool) pop() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	if d := p.t.IdleConnTimeout; d > 0 && p.t.clock().Sub(c.idleAt) >= d {
		for i, o := range p.idle {
			o.close()
			p.idle[i] = nil
		}
		p.idle = p.idle[:0]
		return nil
	}
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
}

// put makes c idle, or closes it when the pool is full.
func (p *pool) put(c *conn) {
	c.reused = true
	d := p.t.IdleConnTimeout
	p.mu.Lock()
	if len(p.idle) >= p.t.maxIdle() {
		p.mu.Unlock()
		c.close()
		return
	}
	c.idleAt = p.t.clock()
	p.idle = append(p.idle, c)
	if d > 0 && !p.timerOn {
		p.timerOn = true
		if p.timer == nil {
			p.timer = time.AfterFunc(d, p.sweep)
		} else {
			p.timer.Reset(d)
		}
	}
	p.mu.Unlock()
}

// sweep closes the connections idle for IdleConnTimeout or longer, and
// sets the timer for the next one to expire.
func (p *pool) sweep() {
	d := p.t.IdleConnTimeout
	now := p.t.clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= d {
		p.idle[i].close()
		i++
	}
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n == 0 {
		p.timerOn = false
		return
	}
	p.timer.Reset(p.idle[0].idleAt.Add(d).Sub(now))
}

func (p *pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.idle {
		c.close()
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}

// conn is one connection to an upstream. Between requests it belongs to
// its pool; during one, to that request's exchange.
type conn struct {
	nc   net.Conn
	pool *pool
	br   *bufio.Reader // reads through conn.Read
	bw   *bufio.Writer // writes through conn.Write

	// Touched by the reading side only.
	limit  int64 // bytes the reads may still take: the header limit
	nread  int64 // bytes read, ever
	sawEOF bool  // the upstream closed its side
	reused bool  // served a request before
	idleAt time.Time

	// Touched by the writing side only.
	nwrite int64 // bytes written, ever

	// Read only by alive.
	raw     syscall.RawConn
	peekFn  func(fd uintptr) bool // raw.Read's argument, made once
	peekN   int
	peekErr error
	peekBuf [1]byte

	cancelFn func() // conn.cancel, made once

	mu         sync.Mutex // guards the deadlines against a cancellation
	canceled   bool       // the request's context ended: deadlines stay in the past
	gotHeaders bool       // the response header is in: no header timeout any more
}

const unlimited = 1<<63 - 1

func newConn(p *pool, nc net.Conn) *conn {
	c := &conn{nc: nc, pool: p, limit: unlimited}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.bw = bufio.NewWriterSize(c, 4<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peekFn = c.peek
		}
	}
	c.cancelFn = c.cancel
	return c
}

// Read is what br reads from: the connection, within the header limit.
func (c *conn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.nc.Read(p)
	c.limit -= int64(n)
	c.nread += int64(n)
	if err == io.EOF {
		c.sawEOF = true
	}
	return n, err
}

// Write is what bw writes to.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwrite += int64(n)
	return n, err
}

func (c *conn) close() { c.nc.Close() }

// begin readies c for a request.
func (c *conn) begin() {
	c.mu.Lock()
	c.canceled = false
	c.gotHeaders = false
	c.mu.Unlock()
}

// cancel runs when the request's context ends: every blocked read and
// write returns, and the connection is not used again.
func (c *conn) cancel() {
	c.mu.Lock()
	c.canceled = true
	c.nc.SetDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// startHeaderTimer starts ResponseHeaderTimeout once the request is
// written, unless the header has already arrived.
func (c *conn) startHeaderTimer(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	if !c.canceled && !c.gotHeaders {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.mu.Unlock()
}

// headersIn stops the header timer.
func (c *conn) headersIn(d time.Duration) {
	c.mu.Lock()
	c.gotHeaders = true
	if d > 0 && !c.canceled {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
}

// timedOut reports whether err is the header timer's (not a cancellation).
func (c *conn) timedOut(err error) bool {
	var ne net.Error
	if !asNetError(err, &ne) || !ne.Timeout() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.canceled
}
