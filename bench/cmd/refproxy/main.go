// Command refproxy is the load benchmark's reference reverse proxy (the
// rp-ref row of bench/run.sh, issue 12): a minimal httputil.ReverseProxy with
// a tuned transport and a cookie presence check, and nothing else. It shows
// what Go's own proxying machinery costs on the machine, so that Gatehouse's
// proxied path can be compared with it in the same run.
//
// It authenticates nobody: a request is passed on when its Cookie header
// holds "NAME=" (what nginx-ref's `$http_cookie !~ "NAME="` checks), and
// refused with 401 otherwise. It is a benchmark tool, not a proxy to deploy.
//
//	refproxy -listen 127.0.0.1:8081 -upstream http://127.0.0.1:8000 -cookie gatehouse
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("refproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := fs.String("upstream", "", "upstream base URL, http://host:port (required)")
	cookie := fs.String("cookie", "gatehouse", `cookie whose presence lets a request through; "" = no check`)
	idle := fs.Int("max-idle-conns-per-host", 256, "idle upstream connections kept: at least the client connections, so none is ever reopened")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("refproxy: %w", err)
	}
	target, err := url.Parse(*upstream)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return fmt.Errorf("refproxy: -upstream %q: want http://host:port", *upstream)
	}
	if *idle < 1 {
		return fmt.Errorf("refproxy: -max-idle-conns-per-host %d: must be positive", *idle)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("refproxy: -listen: %w", err)
	}
	logger := log.New(stderr, "refproxy: ", 0)
	srv := &http.Server{
		Handler: newHandler(target, *cookie, newTransport(*idle), logger),
		// The same limits Gatehouse's server has by default.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          logger,
	}
	logger.Printf("listening on %s, upstream %s", ln.Addr(), target.Redacted())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("refproxy: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("refproxy: shutdown: %w", err)
	}
	return nil
}

// newTransport is tuned the way a proxy in front of one busy upstream should
// be: keep-alive with an idle pool at least as large as the client side, no
// compression of its own, a timeout on every phase.
func newTransport(idle int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
}

// newHandler is the whole proxy: the cookie check, then ReverseProxy with
// a Rewrite that only sets the upstream (no X-Forwarded-*, no header work,
// like nginx's plain proxy_pass).
func newHandler(target *url.URL, cookie string, rt http.RoundTripper, logger *log.Logger) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
			pr.Out.Host = pr.In.Host
		},
		Transport:  rt,
		BufferPool: &bufferPool{},
		ErrorLog:   logger,
	}
	want := cookie + "="
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cookie != "" && !hasCookie(r.Header["Cookie"], want) {
			http.Error(w, "no session cookie", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// hasCookie reports whether any Cookie header contains prefix ("NAME="):
// a presence check as loose as nginx's regular expression, no parsing.
func hasCookie(values []string, prefix string) bool {
	for _, v := range values {
		if strings.Contains(v, prefix) {
			return true
		}
	}
	return false
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }
