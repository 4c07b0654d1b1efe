package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as a configuration file: Load and
// Validate must return (an error or not), never panic or hang.
func FuzzLoad(f *testing.F) {
	// The golden inputs: valid and invalid configurations of every kind.
	for _, dir := range []string{"invalid", "effective"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			input, _, _ := strings.Cut(string(data), goldenSeparator)
			f.Add([]byte(input))
		}
	}
	for _, seed := range []string{
		validYAML,
		"",                                 // empty file
		"~\n",                              // null document
		"[1, 2]\n",                         // not a mapping
		"a: &a [*a]\n",                     // self-referencing alias
		"oidc: &o {<<: *o}\n",              // self-merge
		"routes: [{claims: {1: 2, ~: x}}]", // non-string claim keys
		"routes: [~, 1, [a]]\n",            // routes that are not mappings
		"session: {idle_timeout: 1e300}\n", // number too large for a duration
		"redis: {db: 99999999999999999999}\n",
		"cookie: {secrets_file: /dev/zero}\n", // not a regular file
		"\xff\xfe\x00",                        // not UTF-8
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a Config with error %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("Load returned neither a Config nor an error")
		}
		err = c.Validate()
		if err != nil && !strings.HasPrefix(err.Error(), "invalid configuration:\n  ") {
			t.Fatalf("Validate error %q is not the documented format", err)
		}
		c.Redacted()
		c.EffectiveRoutes()
	})
}
