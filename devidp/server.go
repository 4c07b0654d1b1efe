package devidp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Provider listening on a loopback port, as Start returns it.
type Server struct {
	*Provider
	// URL is the listener's base URL, "http://127.0.0.1:PORT"; the issuer
	// unless Config.Issuer said otherwise.
	URL string

	srv       *http.Server
	served    chan error
	closeOnce sync.Once
	closeErr  error
}

// Start runs a Provider on a fresh random port of 127.0.0.1. It listens
// first so that an empty cfg.Issuer can be filled with the listener's URL,
// then builds the Provider and serves it until Close.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("devidp: listening: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if cfg.Issuer == "" {
		cfg.Issuer = base
	}
	p, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{
		Provider: p,
		URL:      base,
		srv: &http.Server{
			Handler: p,
			// Slow or stuck clients must not pin connections: header and
			// body reads, writes and idle keep-alives are all bounded.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server, giving requests in flight up to five seconds, and
// waits for it to finish. Later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdownErr := s.srv.Shutdown(ctx)
	if shutdownErr != nil {
		shutdownErr = errors.Join(shutdownErr, s.srv.Close())
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("devidp: serving: %w", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("devidp: shutting down: %w", shutdownErr)
	}
	return nil
}
