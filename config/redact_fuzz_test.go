package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// secretKey is a configuration key that holds a secret after Load.
type secretKey struct {
	leaf
	file string // the *_file key whose content Load puts here; "" if none
}

// secretKeys finds every key that holds a secret: those tagged
// secret:"true" and, tagged or not, the value key of every *_file key
// (oidc.client_secret for oidc.client_secret_file), since Load puts the
// file's content there. A secret added later is found the same way.
func secretKeys() []secretKey {
	byKey := map[string]leaf{}
	for _, l := range leaves {
		byKey[l.key] = l
	}
	var out []secretKey
	seen := map[string]bool{}
	for _, l := range leaves {
		if base, ok := strings.CutSuffix(l.key, "_file"); ok {
			if v, ok := byKey[base]; ok {
				out = append(out, secretKey{leaf: v, file: l.key})
				seen[base] = true
			}
		}
	}
	for _, l := range leaves {
		if !seen[l.key] && reflect.TypeFor[Config]().FieldByIndex(l.index).Tag.Get("secret") == "true" {
			out = append(out, secretKey{leaf: l})
		}
	}
	return out
}

// TestSecretKeys pins what secretKeys finds, so the fuzz target below
// cannot pass by filling nothing.
func TestSecretKeys(t *testing.T) {
	got := map[string]string{}
	for _, k := range secretKeys() {
		got[k.key] = k.file
		if tag := reflect.TypeFor[Config]().FieldByIndex(k.index).Tag.Get("secret"); tag != "true" {
			t.Errorf("%s holds the content of %s but is not tagged secret:\"true\"", k.key, k.file)
		}
	}
	for key, file := range map[string]string{
		"oidc.client_secret": "oidc.client_secret_file",
		"cookie.secrets":     "cookie.secrets_file",
		"redis.password":     "redis.password_file",
	} {
		if f, ok := got[key]; !ok || f != file {
			t.Errorf("secretKeys has %s = %q, %v; want it, read from %s", key, f, ok, file)
		}
	}
}

// source says where the fuzz target puts a secret.
type source int

const (
	fromFile source = iota // the *_file key names a file holding it
	fromEnv                // a GATEHOUSE_* variable
	fromYAML               // inline in the configuration file
)

// maskSecret replaces every byte of s that Load's splitting and trimming
// ignore (printable ASCII but ',' and '#') with another, keeping the
// separators, whitespace and non-ASCII bytes. Loading the masked secret
// yields the same number of values of the same lengths, in the same
// places, with different content: redacted output that depends on more
// than that leaks the secret.
func maskSecret(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c > ' ' && c < 0x7f && c != ',' && c != '#' {
			if c == 'x' {
				b[i] = 'y'
			} else {
				b[i] = 'x'
			}
		}
	}
	return string(b)
}

// loadWithSecret writes a configuration that sets every secret key to
// secret, each from the source modes picks, and loads it. Secret files
// live in dir under fixed names, so two loads differ only in the secret.
func loadWithSecret(t *testing.T, dir, secret string, modes uint64) *Config {
	t.Helper()
	doc := map[string]any{}
	env := map[string]string{}
	for i, k := range secretKeys() {
		src := source(modes >> (2 * i) % 3)
		if src == fromFile && k.file == "" {
			src = fromEnv
		}
		if src == fromYAML && !utf8.ValidString(secret) {
			src = fromEnv // YAML text cannot hold invalid UTF-8
		}
		switch src {
		case fromFile:
			path := filepath.Join(dir, strings.ReplaceAll(k.file, ".", "-"))
			if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
			setKey(doc, k.file, path)
		case fromEnv:
			env[k.env] = secret
		case fromYAML:
			if k.typ.Kind() == reflect.Slice {
				setKey(doc, k.key, []string{secret})
			} else {
				setKey(doc, k.key, secret)
			}
		}
	}
	data := flowYAML(doc)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("Load of a configuration that only sets secrets: %v\n%s", err, data)
	}
	return c
}

// flowYAML writes a document of mappings, lists and strings in YAML's flow
// style, every string double-quoted with everything but printable ASCII
// escaped, so that any valid UTF-8 reads back exactly. (yaml.v3's encoder
// writes some strings it cannot read back, such as block scalars of leading
// newlines and spaces, and JSON leaves DEL and C1 controls raw, which YAML
// refuses.)
func flowYAML(v any) string {
	var b strings.Builder
	var write func(v any)
	write = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			b.WriteByte('{')
			for i, k := range slices.Sorted(maps.Keys(v)) {
				if i > 0 {
					b.WriteString(", ")
				}
				write(k)
				b.WriteString(": ")
				write(v[k])
			}
			b.WriteByte('}')
		case []string:
			b.WriteByte('[')
			for i, s := range v {
				if i > 0 {
					b.WriteString(", ")
				}
				write(s)
			}
			b.WriteByte(']')
		case string:
			b.WriteByte('"')
			for _, r := range v {
				switch {
				case r == '"' || r == '\\':
					b.WriteByte('\\')
					b.WriteRune(r)
				case r >= ' ' && r < 0x7f:
					b.WriteRune(r)
				case r <= 0xffff:
					fmt.Fprintf(&b, `\u%04x`, r)
				default:
					fmt.Fprintf(&b, `\U%08x`, r)
				}
			}
			b.WriteByte('"')
		}
	}
	write(v)
	b.WriteByte('\n')
	return b.String()
}

// setKey sets the dotted key in a nested YAML document.
func setKey(doc map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := doc[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			doc[p] = sub
		}
		doc = sub
	}
	doc[parts[len(parts)-1]] = v
}

// renderings are every form in which a configuration leaves the process:
// Redacted as `config check --print` writes it, the log line, and %v.
func renderings(t *testing.T, c *Config) map[string]string {
	t.Helper()
	printed, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("config", "config", c, "oidc", c.OIDC, "cookie", c.Cookie, "redis", c.Redis)
	return map[string]string{
		"Redacted": fmt.Sprintf("%#v", c.Redacted()),
		"--print":  string(printed),
		"log":      logged.String(),
		"%v":       fmt.Sprintf("%v %v %v", c.OIDC, c.Cookie, c.Redis),
		"%+v":      fmt.Sprintf("%+v", *c),
		"%#v":      fmt.Sprintf("%#v %#v %#v", c.OIDC, c.Cookie, c.Redis),
	}
}

// leaks compares the renderings of a configuration loaded with a secret
// and with its mask, and returns the forms that differ.
func leaks(secret, masked map[string]string) []string {
	var out []string
	for form, s := range secret {
		if s != masked[form] {
			out = append(out, fmt.Sprintf("%s:\n  with the secret: %s\n  with its mask:   %s", form, s, masked[form]))
		}
	}
	return out
}

// FuzzRedactedHidesSecrets: whatever a secret's bytes and wherever it comes
// from (a *_file, an environment variable, the YAML file), no form of the
// configuration that leaves the process (Redacted, `config check --print`,
// a log line, %v) depends on it beyond whether it is set and how many
// values it holds: loading the secret and loading its mask (same length and
// separators, other bytes) must render identically.
func FuzzRedactedHidesSecrets(f *testing.F) {
	for _, seed := range []string{
		"0123456789abcdef0123456789abcdef",
		"REDACTED",
		"",
		" ",
		"x",
		"a,b,c",
		"first-secret-0123456789abcdef012345\nsecond-secret-0123456789abcdef01234\n",
		"# a comment\nsecret\n",
		"pass word\r\n",
		"\xff\xfe\x00secret",
		"ünïcødé-sécret",
		`"quoted': {yaml} [flow] &anchor *alias`,
		"gatehouse",
		"127.0.0.1:6379",
	} {
		for _, modes := range []uint64{0, 0b010101, 0b101010, 0b100100} {
			f.Add(seed, modes)
		}
	}
	f.Fuzz(func(t *testing.T, secret string, modes uint64) {
		dir := t.TempDir()
		masked := maskSecret(secret)
		c := loadWithSecret(t, dir, secret, modes)
		withSecret := renderings(t, c)
		m := loadWithSecret(t, dir, masked, modes)
		withMask := renderings(t, m)
		if bad := leaks(withSecret, withMask); len(bad) > 0 {
			t.Errorf("the secret %q shows through:\n%s", secret, strings.Join(bad, "\n"))
		}
	})
}

// TestRedactionCheckCatchesALeak is the fuzz target's check against a
// rendering that does leak: it must notice, or the fuzz target could never
// fail.
func TestRedactionCheckCatchesALeak(t *testing.T) {
	for i, k := range secretKeys() {
		for _, src := range []source{fromFile, fromEnv, fromYAML} {
			modes := uint64(src) << (2 * i)
			dir := t.TempDir()
			secret := "a-secret-0123456789abcdef0123456789"
			c := loadWithSecret(t, dir, secret, modes)
			m := loadWithSecret(t, dir, maskSecret(secret), modes)
			leaky := func(c *Config) map[string]string {
				return map[string]string{"raw": fmt.Sprint(reflect.ValueOf(*c).FieldByIndex(k.index).Interface())}
			}
			if len(leaks(leaky(c), leaky(m))) == 0 {
				t.Errorf("%s from source %d: a rendering of the raw field went unnoticed (was the secret loaded at all?)", k.key, src)
			}
			if bad := leaks(renderings(t, c), renderings(t, m)); len(bad) > 0 {
				t.Errorf("%s from source %d leaks:\n%s", k.key, src, strings.Join(bad, "\n"))
			}
		}
	}
}
