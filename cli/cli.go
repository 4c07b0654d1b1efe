// Package cli parses Gatehouse's command line and runs its subcommands:
// serve (the default), demo, config check, keys generate, sessions,
// healthcheck and version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
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
  sessions list    list users' sessions in Redis        (--sub S | --email E | --session SID) [--config FILE]
  sessions revoke  end them on every replica, audited   (--sub S | --email E | --session SID) [--config FILE]
  healthcheck      probe a running instance's /healthz  [--url URL | --config FILE]
  version          print the version (also --version)
  help [command]   print this, or a command's flags (also <command> -h)

Every configuration key can be set by an environment variable GATEHOUSE_<KEY>,
e.g. GATEHOUSE_OIDC_CLIENT_SECRET for oidc.client_secret, or on the command line
with --set key=value (e.g. --set session.store=redis); the command line wins over
the environment, which wins over the file. Lists are comma-separated.
`

// commands describes each command for its -h page: what it does, and what
// it takes besides flags.
var commands = map[string]struct{ summary, operands string }{
	"serve": {summary: "Run the proxy until SIGTERM or SIGINT, then drain in-flight requests for up to\n" +
		"server.shutdown_timeout. The configuration comes from --config FILE (or\n" +
		"GATEHOUSE_CONFIG), GATEHOUSE_<KEY> environment variables and --set; see\n" +
		"config.example.yaml for every key. SIGHUP, or a change of the file or of a\n" +
		"file it names (secrets, keys), reloads it; a bad one is refused and the\n" +
		"running one keeps serving (docs/operations.md)."},
	"demo": {summary: "Run Gatehouse, a development OpenID provider and an echo upstream in one\n" +
		"process on 127.0.0.1, with the memory session store: nothing to configure."},
	"config check": {summary: "Load and validate the configuration as serve would, list every problem by\n" +
		"key, and exit non-zero if there is one."},
	"keys generate": {summary: "Generate a private key that signs minted tokens, as PEM, for\n" +
		"token.signing_key_files."},
	"sessions list": {summary: "List the live sessions of a user (--sub), of an email address (--email), or one\n" +
		"session by its public sid (--session), from the Redis of the configuration\n" +
		"serve runs with: when each was created, last seen and expires, the client,\n" +
		"and a summary of its browser and network. No token, cookie or secret is shown."},
	"sessions revoke": {summary: "End the sessions of a user (--sub), of an email address (--email), or one\n" +
		"session by its public sid (--session), on every replica at once, from the\n" +
		"Redis of the configuration serve runs with. An audit line (who, what, how\n" +
		"many) goes to standard error as JSON."},
	"healthcheck": {summary: "Probe a running Gatehouse's /healthz on its metrics listener; exit 0 when it\n" +
		"answers 200. The container image's HEALTHCHECK runs it (there is no shell)."},
	"version": {summary: "Print the version."},
}

// usageError is a command line that cannot be run as written; the process
// exits 2 for it, as flag parsing conventionally does.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode is the process's exit status for a usage error.
func (e usageError) ExitCode() int { return 2 }

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// Run executes the command line args (args[0] is the program name).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	rest := args[1:]
	if len(rest) > 0 {
		switch {
		case isHelp(rest[0]) || rest[0] == "help":
			return help(ctx, rest[1:], getenv, stdout, stderr)
		case rest[0] == "-version" || rest[0] == "--version":
			fmt.Fprintln(stdout, "gatehouse", version())
			return nil
		}
	}
	cmd := "serve"
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	return dispatch(ctx, cmd, rest, getenv, stdout, stderr)
}

// help prints the overview, or the named command's page: `gatehouse help
// config check` is `gatehouse config check -h`.
func help(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	return dispatch(ctx, args[0], append(slices.Clone(args[1:]), "-h"), getenv, stdout, stderr)
}

func dispatch(ctx context.Context, cmd string, rest []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "config", "keys":
		sub := map[string]string{"config": "check", "keys": "generate"}[cmd]
		if len(rest) > 0 && rest[0] == sub {
			if cmd == "config" {
				return configCheck(rest[1:], getenv, stdout)
			}
			return keysGenerate(rest[1:], stdout)
		}
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprintf(stdout, "Usage: gatehouse %s %s [flags]\n\n`gatehouse %s %s -h` lists its flags.\n", cmd, sub, cmd, sub)
			return nil
		}
		return usageError{fmt.Errorf("usage: gatehouse %s %s [flags] (gatehouse %s %s -h lists them)", cmd, sub, cmd, sub)}
	case "sessions":
		return sessionsCommand(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, getenv, stdout)
	case "version":
		fs := newFlags("version")
		if done, err := parseFlags(fs, rest, stdout); done || err != nil {
			return err
		}
		fmt.Fprintln(stdout, "gatehouse", version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

func version() string {
	if Version != "" {
		return Version
	}
	// "(devel)" is what a build outside module mode reports: no version.
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args into fs. For -h or --help it prints the command's
// page (what it does and its flags) to stdout and reports done, so the
// command returns nil and the process exits 0; a bad flag or a stray
// argument is a usageError that names the help to read.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	name := fs.Name()
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: gatehouse %s [flags]\n\n%s\n", name, commands[name].summary)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(stdout, "\nFlags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
		return true, nil
	}
	if err != nil {
		return false, usageError{fmt.Errorf("%s: %w (gatehouse %s -h lists the flags)", name, err, name)}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Errorf("%s: unexpected argument %q (gatehouse %s -h lists the flags)", name, fs.Arg(0), name)}
	}
	return false, nil
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

// errNoConfig is what serve and config check say when given nothing at all:
// how to give a configuration, rather than a list of missing keys.
var errNoConfig = errors.New(`no configuration: give one with
  --config FILE                a YAML file with the keys of config.example.yaml
                               (or GATEHOUSE_CONFIG=FILE)
  GATEHOUSE_<KEY>=value        an environment variable per key, e.g.
                               GATEHOUSE_PUBLIC_URL, GATEHOUSE_OIDC_ISSUER,
                               GATEHOUSE_OIDC_CLIENT_ID, GATEHOUSE_OIDC_CLIENT_SECRET,
                               GATEHOUSE_COOKIE_SECRETS, GATEHOUSE_UPSTREAM
  --set key=value              on the command line, e.g. --set session.store=redis
'gatehouse config check --config FILE' lists what a configuration lacks.
To try Gatehouse with nothing to configure, run 'gatehouse demo'`)

// load reads and validates the configuration.
func load(path string, getenv func(string) string) (*config.Config, error) {
	if path == "" {
		path = getenv("GATEHOUSE_CONFIG")
	}
	// Note whether any GATEHOUSE_* variable (or --set, which rides on the
	// same lookup) gave a value: with neither that nor a file, the user has
	// not yet met the configuration, and a list of missing keys helps less
	// than saying how to give one.
	configured := path != ""
	cfg, err := config.Load(path, func(k string) string {
		v := getenv(k)
		if v != "" && strings.HasPrefix(k, "GATEHOUSE_") {
			configured = true
		}
		return v
	})
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		if !configured {
			return nil, usageError{errNoConfig}
		}
		return nil, err
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve")
	path := fs.String("config", "", "configuration `FILE` (YAML); env GATEHOUSE_CONFIG")
	sets := setFlags{}
	fs.Var(sets, "set", "`key=value` override of a configuration key, repeatable")
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
		return err
	}
	// SIGHUP reloads the configuration. Caught from here on, so that one
	// arriving during startup does not kill the process (its default).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := load(*path, sets.over(getenv))
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	file := *path
	if file == "" {
		file = getenv("GATEHOUSE_CONFIG")
	}
	a, err := app.New(cfg, log, app.Options{
		Version:    version(),
		ConfigFile: file, Getenv: sets.over(getenv), ReloadSignals: hup,
	})
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
	listen := fs.String("listen", "127.0.0.1:4180", "`address` of the demo's Gatehouse")
	verbose := fs.Bool("v", false, "log every request")
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
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
	path := fs.String("config", "", "configuration `FILE` (YAML); env GATEHOUSE_CONFIG")
	print := fs.Bool("print", false, "print the effective configuration, secrets redacted")
	sets := setFlags{}
	fs.Var(sets, "set", "`key=value` override of a configuration key, repeatable")
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
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
	} else if cfg.Session.Store == "redis" {
		// serve refuses it too (app.New): replicas would sign with different keys.
		return errors.New("invalid configuration:\n  token.signing_key_files: required with session.store: redis (every replica must sign with the same key; gatehouse keys generate writes one)")
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
	alg := fs.String("alg", "ES256", "signing algorithm: ES256, EdDSA or RS256")
	out := fs.String("out", "", "`FILE` to write (mode 0600); default standard output")
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
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
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlags("healthcheck")
	target := fs.String("url", "", "`URL` to probe; default http://<metrics_listen>/healthz")
	path := fs.String("config", "", "configuration `FILE`, to find metrics_listen")
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
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
