package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// runSplit runs the command line and returns standard output and standard
// error apart: help belongs on standard output, where `| less` finds it.
func runSplit(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Run(context.Background(), append([]string{"gatehouse"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestHelp: every way of asking for help prints the page to standard output
// and succeeds (exit 0), and a command's page lists its own flags. Before,
// `gatehouse --help` reached serve's flag parser and failed with "flag: help
// requested".
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of standard output
	}{
		{[]string{"--help"}, []string{"Usage: gatehouse [command]", "config check", "keys generate", "healthcheck"}},
		{[]string{"-h"}, []string{"Usage: gatehouse [command]"}},
		{[]string{"help"}, []string{"Usage: gatehouse [command]"}},
		{[]string{"serve", "--help"}, []string{"Usage: gatehouse serve", "-config FILE", "-set key=value", "GATEHOUSE_CONFIG"}},
		{[]string{"serve", "-h"}, []string{"-config FILE"}},
		{[]string{"help", "serve"}, []string{"Usage: gatehouse serve", "-config FILE"}},
		{[]string{"demo", "-h"}, []string{"Usage: gatehouse demo", "-listen address", "-v"}},
		{[]string{"help", "demo"}, []string{"-listen address"}},
		{[]string{"config", "check", "-h"}, []string{"Usage: gatehouse config check", "-config FILE", "-print", "-set key=value"}},
		{[]string{"help", "config", "check"}, []string{"Usage: gatehouse config check", "-print"}},
		{[]string{"help", "config"}, []string{"gatehouse config check"}},
		{[]string{"config", "--help"}, []string{"gatehouse config check"}},
		{[]string{"keys", "generate", "--help"}, []string{"Usage: gatehouse keys generate", "-alg", "ES256, EdDSA or RS256", "-out FILE"}},
		{[]string{"help", "keys", "generate"}, []string{"-out FILE"}},
		{[]string{"healthcheck", "-h"}, []string{"Usage: gatehouse healthcheck", "-url URL", "-config FILE"}},
		{[]string{"help", "healthcheck"}, []string{"-url URL"}},
		{[]string{"version", "-h"}, []string{"Usage: gatehouse version"}},
		{[]string{"help", "version"}, []string{"Print the version."}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runSplit(t, nil, tt.args...)
			if err != nil {
				t.Fatalf("got error %v; want success (exit 0)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("standard output lacks %q:\n%s", w, stdout)
				}
			}
			if stderr != "" {
				t.Errorf("standard error %q; want nothing", stderr)
			}
		})
	}
}

// TestHelpDoesNotRun: asking a command for help must not run it; serve with
// -h and no configuration would otherwise fail, and demo would start
// listening.
func TestHelpDoesNotRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a command that did run would stop at once rather than hang the test
	var out bytes.Buffer
	for _, args := range [][]string{{"demo", "-h"}, {"serve", "--config", "/nonexistent.yaml", "-h"}} {
		out.Reset()
		if err := Run(ctx, append([]string{"gatehouse"}, args...), func(string) string { return "" }, &out, &out); err != nil {
			t.Errorf("%q: %v; want the help page", args, err)
		}
		if !strings.Contains(out.String(), "Usage: gatehouse "+args[0]) {
			t.Errorf("%q printed %q; want the help page", args, out.String())
		}
	}
}

// TestVersionFlag: --version prints what `gatehouse version` prints.
func TestVersionFlag(t *testing.T) {
	Version = "v9.8.7-test"
	defer func() { Version = "" }()
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		stdout, _, err := runSplit(t, nil, args...)
		if err != nil || stdout != "gatehouse v9.8.7-test\n" {
			t.Errorf("%q printed %q, %v; want \"gatehouse v9.8.7-test\\n\"", args, stdout, err)
		}
	}
}

// TestUsageErrors: a command line that cannot run is a usage error (exit
// status 2) that says where the help is, never a bare "flag provided but not
// defined".
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--nope"}, "gatehouse serve -h"},
		{[]string{"--nope"}, "gatehouse serve -h"},
		{[]string{"keys", "generate", "--alg"}, "gatehouse keys generate -h"},
		{[]string{"config"}, "gatehouse config check -h"},
		{[]string{"config", "chek"}, "gatehouse config check -h"},
		{[]string{"keys"}, "gatehouse keys generate -h"},
		{[]string{"healthcheck", "extra"}, `unexpected argument "extra"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runSplit(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
			var coded interface{ ExitCode() int }
			if !errors.As(err, &coded) || coded.ExitCode() != 2 {
				t.Errorf("error %v carries no exit status 2", err)
			}
		})
	}
}

// TestServeWithoutConfiguration: serve (and config check) given neither a
// file nor a GATEHOUSE_* variable says how to give a configuration and
// suggests the demo, instead of listing a dozen missing keys.
func TestServeWithoutConfiguration(t *testing.T) {
	for _, args := range [][]string{nil, {"serve"}, {"config", "check"}} {
		_, _, err := runSplit(t, map[string]string{"HOME": "/root", "PATH": "/usr/bin"}, args...)
		if err == nil {
			t.Fatalf("%q succeeded with no configuration", args)
		}
		for _, w := range []string{"--config FILE", "GATEHOUSE_CONFIG", "GATEHOUSE_<KEY>", "GATEHOUSE_OIDC_ISSUER", "gatehouse demo"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error lacks %q:\n%v", args, w, err)
			}
		}
		if strings.Contains(err.Error(), "oidc.issuer: required") {
			t.Errorf("%q: error lists missing keys; want how to give a configuration:\n%v", args, err)
		}
	}
	// With a GATEHOUSE_* variable the user has started configuring, so the
	// error names what is still missing, by key.
	_, _, err := runSplit(t, map[string]string{"GATEHOUSE_PUBLIC_URL": "https://app.example.com"}, "serve")
	if err == nil || !strings.Contains(err.Error(), "oidc.issuer") || strings.Contains(err.Error(), "gatehouse demo") {
		t.Errorf("got %v; want the missing keys by name", err)
	}
}
