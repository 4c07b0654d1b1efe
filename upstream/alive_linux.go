package upstream

import "syscall"

// alive reports whether an idle connection still looks usable: the
// upstream has neither closed it nor sent anything since the last response
// (http.Transport learns both from the read goroutine it keeps on every
// connection; this is one non-blocking peek instead).
func (c *conn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peekN, c.peekErr = 0, nil
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	// EAGAIN: nothing to read, the connection is open. 0 bytes is the
	// upstream's FIN; any byte is an unsolicited response, which must not
	// be taken for the answer to the next request.
	return c.peekErr == syscall.EAGAIN
}

func (c *conn) peek(fd uintptr) bool {
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // done: never wait for readability
}
