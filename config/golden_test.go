package config

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected part of testdata/*/*.txt golden files")

// goldenSeparator splits a golden file into its YAML input and the expected output.
const goldenSeparator = "\n----------\n"

// runGolden runs each testdata/<dir>/*.txt file as a subtest: the YAML before
// the separator is loaded from a file named config.yaml, and produce's result
// must equal the text after it.
func runGolden(t *testing.T, dir string, produce func(t *testing.T, path string) string) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in testdata/%s: %v", dir, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), goldenSeparator)
			if !ok {
				t.Fatalf("%s: no %q line", file, strings.TrimSpace(goldenSeparator))
			}
			tmp := t.TempDir()
			path := filepath.Join(tmp, "config.yaml")
			if err := os.WriteFile(path, []byte(input), 0o600); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(produce(t, path), tmp+string(filepath.Separator), "")
			if *update {
				if err := os.WriteFile(file, []byte(input+goldenSeparator+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want = strings.TrimSuffix(want, "\n"); got != want {
				t.Errorf("%s:\ngot:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

// Each file in testdata/invalid is a configuration with mistakes and the
// exact error Gatehouse prints for it: every line names the key at fault.
func TestInvalidConfigs(t *testing.T) {
	runGolden(t, "invalid", func(t *testing.T, path string) string {
		c, err := Load(path, nil)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Fatalf("Load+Validate succeeded; want an error")
		}
		lines := strings.Split(err.Error(), "\n")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "  ") || !strings.Contains(l, ": ") {
				t.Errorf("error line %q does not name a key", l)
			}
		}
		return err.Error()
	})
}

// Each file in testdata/effective is a valid configuration and the effective
// configuration Redacted reports for it: defaults applied, secrets hidden.
func TestEffectiveConfigs(t *testing.T) {
	runGolden(t, "effective", func(t *testing.T, path string) string {
		c, err := Load(path, nil)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		out, err := json.MarshalIndent(c.Redacted(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	})
}
