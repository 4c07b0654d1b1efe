// Command devstack runs, on 127.0.0.1, what the Django example needs in front
// of it for local development: the development OpenID provider (devidp, with
// the demo users) and Gatehouse with one route to Django. It is `gatehouse
// demo` with your Django instead of the echo upstream:
//
//	go run ./examples/django/devstack                    # Gatehouse on 127.0.0.1:4180
//	cd examples/django && python3 manage.py runserver 8000
//
// The example's settings default to exactly this Gatehouse (issuer
// http://127.0.0.1:4180, audience "django"), so Django needs no environment.
// Everything lives in memory and vanishes on exit; never use it in production.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// nativeClientID is a public client registered at the provider so native
// apps (and curl, with the device grant) can get tokens Gatehouse accepts.
const nativeClientID = "native-app"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if set, receives Gatehouse's URL once
// everything listens.
func run(ctx context.Context, args []string, out io.Writer, ready func(url string)) error {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:4180", "Gatehouse's address (loopback only)")
	upstream := fs.String("django", "http://127.0.0.1:8000", "where Django serves")
	audience := fs.String("audience", "django", "the audience of the tokens Gatehouse mints for Django")
	verbose := fs.Bool("v", false, "log Gatehouse's requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("--listen %q: devstack serves on a loopback address only", *listen)
	}
	if u, err := url.Parse(*upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--django %q: want an http(s) URL such as http://127.0.0.1:8000", *upstream)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	publicURL := "http://" + ln.Addr().String()

	secret := random(24)
	idp, err := devidp.Start(devidp.Config{
		Users: devidp.DemoUsers(),
		Clients: []devidp.Client{{
			ID:                     "gatehouse",
			Secret:                 secret,
			RedirectURIs:           []string{publicURL + "/oauth2/callback"},
			PostLogoutRedirectURIs: []string{publicURL + "/"},
		}, {
			ID:           nativeClientID,
			RedirectURIs: []string{"http://127.0.0.1/callback"},
		}},
	})
	if err != nil {
		return fmt.Errorf("starting the OpenID provider: %w", err)
	}
	defer idp.Close()

	env := map[string]string{
		"GATEHOUSE_PUBLIC_URL":              publicURL,
		"GATEHOUSE_LISTEN":                  ln.Addr().String(),
		"GATEHOUSE_METRICS_LISTEN":          "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":             idp.URL,
		"GATEHOUSE_OIDC_CLIENT_ID":          "gatehouse",
		"GATEHOUSE_OIDC_CLIENT_SECRET":      secret,
		"GATEHOUSE_COOKIE_SECRETS":          random(32),
		"GATEHOUSE_COOKIE_SECURE":           "false",
		"GATEHOUSE_UPSTREAM":                *upstream,
		"GATEHOUSE_API_ACCEPTED_AUDIENCES":  nativeClientID,
		"GATEHOUSE_LOG_FORMAT":              "text",
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	cfg.Routes = []config.Route{{Name: "django", PathPrefix: "/", Upstream: *upstream, Audience: *audience}}
	if err := cfg.Validate(); err != nil {
		return err
	}
	key, err := tokenmint.GenerateKey("ES256")
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *verbose {
		logger = slog.New(slog.NewTextHandler(out, nil))
	}
	gh, err := app.New(cfg, logger, app.Options{Keys: []*tokenmint.Key{key}, Listener: ln})
	if err != nil {
		return err
	}
	if err := gh.Listen(); err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- gh.Run(ctx) }()
	if err := waitReady(ctx, "http://"+gh.MetricsAddr()+"/readyz", runErr); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	var users []string
	for _, u := range devidp.DemoUsers() {
		users = append(users, fmt.Sprintf("%s / %s (groups: %s)", u.Username, u.Password, strings.Join(u.Groups, ", ")))
	}
	fmt.Fprintf(out, `
Gatehouse is in front of Django at %s.

  Open:        %s/
  Sign in as:  %s
  Provider:    %s (native apps: public client %q, PKCE or device grant)

Django must trust this Gatehouse (the example's defaults do):
  DJANGO_GATEHOUSE_JWKS_URL=%s/oauth2/jwks.json
  DJANGO_GATEHOUSE_ISSUER=%s
  DJANGO_GATEHOUSE_AUDIENCE=%s

Press Ctrl-C to stop.

`, *upstream, publicURL, strings.Join(users, "\n               "), idp.URL, nativeClientID,
		publicURL, publicURL, *audience)
	if ready != nil {
		ready(publicURL)
	}
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitReady polls Gatehouse's /readyz until it has discovered the provider,
// so the banner never invites a sign-in that would fail.
func waitReady(ctx context.Context, readyz string, runErr chan error) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-runErr:
			return fmt.Errorf("gatehouse stopped: %w", err)
		case <-ctx.Done():
			<-runErr
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gatehouse not ready after 30s (%s)", readyz)
		}
	}
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
