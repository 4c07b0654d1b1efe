package proxy

import (
	"bytes"
	"io"
	"net/http"
)

// Request bodies are read before the upstream is asked, up to
// bufferedBodyMax: a client that dribbles a small body (slowloris-style)
// then costs only its bytes so far, never an upstream request held open for
// as long as the server's read timeout, nor the transport's copy buffers
// (about 90 KB each, measured: bench/README.md). nginx does the same
// (proxy_request_buffering). A larger body streams, its first part from
// memory: uploads are not held in Gatehouse.
const bufferedBodyMax = 64 << 10

// bufferBody reads r's body up to bufferedBodyMax. A body that ends within
// it is replaced by its bytes (and a known length); a longer one by its
// first part followed by the rest, streamed. A read error (the client went
// away, or the server's read timeout) is returned for a 400.
//
// The buffer is not pooled: http.Transport may still be writing a body
// after the response came back (an upstream that answers early), and a
// reused buffer would then send another request's bytes.
func bufferBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength > bufferedBodyMax {
		return nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, bufferedBodyMax+1))
	if err != nil {
		return err
	}
	if n <= bufferedBodyMax {
		r.Body.Close()
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(buf.Bytes())), n
		if n == 0 {
			r.Body = http.NoBody
		}
		r.TransferEncoding = nil
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), r.Body}
	return nil
}
