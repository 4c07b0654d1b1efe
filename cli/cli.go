// Package cli parses Gatehouse's command line and runs its subcommands:
// serve (the default), demo, config check, keys generate, healthcheck and
// version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/demo"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// Version is stamped at build time with -ldflags "-X github.com/gatehouse/gatehouse/cli.Version=...".
var Version = ""

const usage = `Usage: gatehouse [command] [flags]

Commands:
  serve            run the proxy (default)             --config FILE [--set key=value ...]
  demo             run proxy + dev OpenID provider + echo upstream on 127.0.0.1   [--listen ADDR]
  config check     validate the configuration, list every problem   --config FILE [--set key=value ...] [--print]
  keys generate    write a PEM signing key              [--alg ES256|EdDSA|RS256] [--out FILE]
  healthcheck      probe a running instance's /healthz  [--url URL | --config FILE]
  version          print the version

Every configuration key can be set by an environment variable GATEHOUSE_<KEY>,
e.g. GATEHOUSE_OIDC_CLIENT_SECRET for oidc.client_secret, or on the command line
with --set key=value (e.g. --set session.store=redis); the command line wins over
the environment, which wins over the file. Lists are comma-separated.
`

// Run executes the command line args (args[0] is the program name).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			return errors.New("usage: gatehouse config check --config FILE [--print]")
		}
		return configCheck(rest[1:], getenv, stdout)
	case "keys":
		if len(rest) == 0 || rest[0] != "generate" {
			return errors.New("usage: gatehouse keys generate [--alg ES256|EdDSA|RS256] [--out FILE]")
		}
		return keysGenerate(rest[1:], stdout)
	case "healthcheck":
		return healthcheck(ctx, rest, getenv)
	case "version":
		fmt.Fprintln(stdout, "gatehouse", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// setFlags collects repeated --set key=value overrides.
type setFlags map[string]string

func (s setFlags) String() string { return "" }

// Set records one override as the environment variable of its key, so it
// takes the same path (and the same parsing) as the environment.
func (s setFlags) Set(kv string) error {
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("--set %q: want key=value", kv)
	}
	env, known := config.EnvName(strings.TrimSpace(key))
	if !known {
		return fmt.Errorf("--set %s: unknown configuration key (routes come only from the file)", key)
	}
	s[env] = value
	return nil
}

// over returns getenv with the overrides in front.
func (s setFlags) over(getenv func(string) string) func(string) string {
	return func(k string) string {
		if v, ok := s[k]; ok {
			return v
		}
		return getenv(k)
	}
}

// load reads and validates the configuration.
func load(path string, getenv func(string) string) (*config.Config, error) {
	if path == "" {
		path = getenv("GATEHOUSE_CONFIG")
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlags("serve")
	path := fs.String("config", "", "configuration file (YAML); env GATEHOUSE_CONFIG")
	sets := setFlags{}
	fs.Var(sets, "set", "key=value override, repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(*path, sets.over(getenv))
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	a, err := app.New(cfg, log, app.Options{})
	if err != nil {
		return err
	}
	if err := a.Listen(); err != nil {
		return err
	}
	return a.Run(ctx)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo")
	listen := fs.String("listen", "127.0.0.1:4180", "address of the demo's Gatehouse")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := "warn"
	if *verbose {
		level = "info"
	}
	return demo.Run(ctx, demo.Options{Listen: *listen, Out: stdout, Logger: app.NewLogger(stderr, "text", level)})
}

func configCheck(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlags("config check")
	path := fs.String("config", "", "configuration file (YAML)")
	print := fs.Bool("print", false, "print the effective configuration, secrets redacted")
	sets := setFlags{}
	fs.Var(sets, "set", "key=value override, repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(*path, sets.over(getenv))
	if err != nil {
		return err
	}
	if len(cfg.Token.SigningKeyFiles) > 0 {
		keys, err := tokenmint.LoadKeyFiles(cfg.Token.SigningKeyFiles)
		if err != nil {
			return fmt.Errorf("invalid configuration:\n  token.signing_key_files: %w", err)
		}
		if cfg.Token.Algorithm != "" && keys[0].Algorithm() != cfg.Token.Algorithm {
			return fmt.Errorf("invalid configuration:\n  token.algorithm: %q, but the first signing key is an %s key", cfg.Token.Algorithm, keys[0].Algorithm())
		}
	}
	if *print {
		out, err := yaml.Marshal(cfg.Redacted())
		if err != nil {
			return err
		}
		_, _ = stdout.Write(out)
	}
	fmt.Fprintln(stdout, "configuration OK")
	return nil
}

func keysGenerate(args []string, stdout io.Writer) error {
	fs := newFlags("keys generate")
	alg := fs.String("alg", "ES256", "ES256, EdDSA or RS256")
	out := fs.String("out", "", "file to write (mode 0600); default standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := tokenmint.GenerateKey(*alg)
	if err != nil {
		return err
	}
	pem, err := k.PEM()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(pem)
		return err
	}
	if err := os.WriteFile(*out, pem, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s key %s to %s\n", k.Algorithm(), k.KeyID(), *out)
	return nil
}

// healthcheck probes /healthz: the container image has no shell or curl.
func healthcheck(ctx context.Context, args []string, getenv func(string) string) error {
	fs := newFlags("healthcheck")
	target := fs.String("url", "", "URL to probe; default http://<metrics_listen>/healthz")
	path := fs.String("config", "", "configuration file, to find metrics_listen")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u := *target
	if u == "" {
		addr := getenv("GATEHOUSE_METRICS_LISTEN")
		if *path != "" || getenv("GATEHOUSE_CONFIG") != "" {
			cfg, err := config.Load(firstNonEmpty(*path, getenv("GATEHOUSE_CONFIG")), getenv)
			if err != nil {
				return err
			}
			addr = cfg.MetricsListen
		}
		if addr == "" {
			addr = "127.0.0.1:9180"
		}
		addr = strings.Replace(addr, "0.0.0.0:", "127.0.0.1:", 1)
		if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		u = "http://" + addr + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", u, resp.Status)
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
