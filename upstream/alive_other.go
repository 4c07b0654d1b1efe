//go:build !linux

package upstream

// alive reports whether an idle connection still looks usable. Without a
// non-blocking peek on this platform it trusts the connection; a stale one
// is caught by the retry of idempotent requests.
func (c *conn) alive() bool { return true }

func (c *conn) peek(fd uintptr) bool { return true }
