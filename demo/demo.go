package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// Options configure the demo.
type Options struct {
	Listen string // Gatehouse's address; default 127.0.0.1:4180
	Out    io.Writer
	Logger *slog.Logger
	// Ready, if set, receives the URL once everything is listening.
	Ready func(url string)
}

// Run starts the provider, the echo upstream and Gatehouse, prints how to use
// them, and serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4180"
	}
	if host, _, err := net.SplitHostPort(o.Listen); err != nil || !isLoopback(host) {
		return fmt.Errorf("demo: --listen %q: the demo serves on 127.0.0.1 only", o.Listen)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	publicURL := "http://" + ln.Addr().String()

	clientSecret := random(24)
	idp, err := devidp.Start(devidp.Config{
		Users: devidp.DemoUsers(),
		Clients: []devidp.Client{{
			ID:                     "gatehouse-demo",
			Secret:                 clientSecret,
			RedirectURIs:           []string{publicURL + "/oauth2/callback"},
			PostLogoutRedirectURIs: []string{publicURL + "/"},
		}},
		ShowHints: true,
		Logger:    o.Logger.With("component", "devidp"),
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: starting the OpenID provider: %w", err)
	}
	defer idp.Close()

	verifier, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{
		Issuer:   publicURL,
		Audience: "demo",
		JWKSURL:  publicURL + "/oauth2/jwks.json",
	})
	if err != nil {
		ln.Close()
		return err
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return err
	}
	up := &http.Server{Handler: &Echo{Verifier: verifier}, ReadHeaderTimeout: 10 * time.Second}
	go up.Serve(upLn)
	defer up.Close()

	env := map[string]string{
		"GATEHOUSE_PUBLIC_URL":              publicURL,
		"GATEHOUSE_LISTEN":                  ln.Addr().String(),
		"GATEHOUSE_METRICS_LISTEN":          "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":             idp.URL,
		"GATEHOUSE_OIDC_CLIENT_ID":          "gatehouse-demo",
		"GATEHOUSE_OIDC_CLIENT_SECRET":      clientSecret,
		"GATEHOUSE_COOKIE_SECRETS":          random(32),
		"GATEHOUSE_COOKIE_SECURE":           "false",
		"GATEHOUSE_UPSTREAM":                "http://" + upLn.Addr().String(),
		"GATEHOUSE_LOG_FORMAT":              "text",
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: %w", err)
	}
	// The catch-all route's audience is "demo" so the echo upstream can pin it.
	cfg.Routes = []config.Route{{Name: "demo", PathPrefix: "/", Upstream: cfg.Upstream, Audience: "demo"}}
	key, err := tokenmint.GenerateKey("ES256")
	if err != nil {
		ln.Close()
		return err
	}
	gh, err := app.New(cfg, o.Logger, app.Options{Keys: []*tokenmint.Key{key}, Listener: ln})
	if err != nil {
		ln.Close()
		return err
	}
	if err := gh.Listen(); err != nil {
		return err
	}
	// The provider runs in this process: find it before saying we are up,
	// so the very first click can sign in.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = gh.Discover(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	users := []string{}
	for _, u := range devidp.DemoUsers() {
		groups := strings.Join(u.Groups, ", ")
		if groups == "" {
			groups = "none"
		}
		users = append(users, fmt.Sprintf("%s / %s (groups: %s)", u.Username, u.Password, groups))
	}
	fmt.Fprintf(o.Out, `
Gatehouse demo is running.

  Open:        %s/
  Sign in as:  %s
  Provider:    %s
  Metrics:     http://%s/metrics

The page you land on is an upstream application: it shows the identity headers and
the signed token Gatehouse gave it, and checks the token against %s/oauth2/jwks.json.
Press Ctrl-C to stop.

`, publicURL, strings.Join(users, "\n               "), idp.URL, gh.MetricsAddr(), publicURL)
	if o.Ready != nil {
		o.Ready(publicURL)
	}
	err = gh.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
