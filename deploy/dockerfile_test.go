package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	pathpkg "path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper-cased: FROM, RUN, ...
	args string // the rest of the line
	line int
}

// stage is a build stage: FROM up to the next FROM.
type stage struct {
	image, name string
	platform    string // FROM --platform=..., unexpanded
	body        []instruction
}

// parseDockerfile splits a Dockerfile into stages. It understands what
// Gatehouse's Dockerfile uses: comments, blank lines, backslash line
// continuations and FROM [--platform=P] image [AS name].
func parseDockerfile(path string) ([]stage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		stages []stage
		cur    strings.Builder
		start  int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue // comments may sit inside a continued instruction too
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var platform string
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform=") {
				platform, f = strings.TrimPrefix(f[0], "--platform="), f[1:]
			}
			if len(f) == 0 || strings.HasPrefix(f[0], "--") {
				return nil, fmt.Errorf("%s:%d: FROM %s: want [--platform=P] image [AS name]", path, start, in.args)
			}
			s := stage{image: f[0], platform: platform}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				return nil, fmt.Errorf("%s:%d: FROM %s: want [--platform=P] image [AS name]", path, start, in.args)
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue // a global ARG, before the first FROM
			}
			return nil, fmt.Errorf("%s:%d: %s before FROM", path, start, in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: ends inside a continued line", path)
	}
	return stages, nil
}

// all returns the stage's instructions of kind cmd.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes an exec-form (JSON array) argument list.
func execForm(args string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		return nil, fmt.Errorf("%q is not an exec-form JSON array: %w", args, err)
	}
	return out, nil
}

// shellWords splits a shell-form RUN command into words as /bin/sh would,
// for the subset a single build command needs: blanks separate words, '...'
// is literal, "..." expands $NAME and ${NAME} from vars and honours \" \\ \$
// and \`, and an unquoted backslash escapes the next character. Anything
// else the shell would interpret (; & | < > ( ) ` globs, ~, #, unquoted $)
// is an error, so that what the test runs is exactly what docker runs.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var (
		words []string
		w     strings.Builder
		inW   bool // a word has started, possibly empty ("")
	)
	expand := func(i int) (int, error) { // s[i] == '$'
		rest := s[i+1:]
		var name string
		var n int
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return 0, errors.New("unterminated ${")
			}
			name, n = rest[1:end], end+1
		} else {
			for n < len(rest) && (rest[n] == '_' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= 'a' && rest[n] <= 'z' || n > 0 && rest[n] >= '0' && rest[n] <= '9') {
				n++
			}
			name = rest[:n]
		}
		if name == "" || strings.ContainsAny(name, ":-+?=#%/") {
			return 0, fmt.Errorf("unsupported expansion at %q", s[i:])
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("$%s is not a declared ARG or ENV", name)
		}
		w.WriteString(v)
		return i + n, nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inW {
				words = append(words, w.String())
				w.Reset()
				inW = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated '")
			}
			w.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inW = true
		case c == '"':
			inW = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, errors.New(`unterminated "`)
				}
				c := s[i]
				if c == '"' {
					break
				}
				switch c {
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
						i++
						c = s[i]
					}
					w.WriteByte(c)
				case '$':
					var err error
					if i, err = expand(i); err != nil {
						return nil, err
					}
				case '`':
					return nil, errors.New("command substitution is not supported")
				default:
					w.WriteByte(c)
				}
			}
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			w.WriteByte(s[i])
			inW = true
		case strings.IndexByte(";&|<>()`$*?[", c) >= 0, (c == '~' || c == '#') && !inW:
			return nil, fmt.Errorf("shell syntax %q is not supported: keep the build RUN a single plain command", c)
		default:
			w.WriteByte(c)
			inW = true
		}
	}
	if inW {
		words = append(words, w.String())
	}
	return words, nil
}

// buildCommand is a parsed `go build` RUN line.
type buildCommand struct {
	env  []string // leading NAME=value assignments
	argv []string // go build ...
	out  string   // the -o target inside the image
}

// builderCommand finds the stage that the final stage copies /gatehouse
// from, and returns its go build command with build arguments (Docker's
// --build-arg) applied over the stage's ARG defaults.
func builderCommand(stages []stage, buildArgs map[string]string) (buildCommand, stage, error) {
	var bc buildCommand
	if len(stages) < 2 {
		return bc, stage{}, fmt.Errorf("want a multi-stage build; got %d stage(s)", len(stages))
	}
	final := stages[len(stages)-1]
	var from, src string
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if len(f) == 3 && strings.HasPrefix(f[0], "--from=") && f[2] == "/gatehouse" {
			from, src = strings.TrimPrefix(f[0], "--from="), f[1]
		}
	}
	if from == "" {
		return bc, stage{}, errors.New("the final stage has no COPY --from=<builder> <binary> /gatehouse")
	}
	i := slices.IndexFunc(stages, func(s stage) bool { return s.name == from })
	if i < 0 {
		return bc, stage{}, fmt.Errorf("COPY --from=%s: no stage of that name", from)
	}
	builder := stages[i]
	vars := map[string]string{}
	for _, in := range builder.all("ARG") {
		// ARG a[=default] [b[=default] ...]; defaults here never hold blanks.
		for _, decl := range strings.Fields(in.args) {
			name, def, _ := strings.Cut(decl, "=")
			vars[name] = def
		}
	}
	for k, v := range buildArgs {
		if _, ok := vars[k]; !ok {
			return bc, builder, fmt.Errorf("build stage %q declares no ARG %s, so --build-arg %s would be ignored", from, k, k)
		}
		vars[k] = v
	}
	var runs []instruction
	for _, in := range builder.all("RUN") {
		if strings.Contains(in.args, "go build") {
			runs = append(runs, in)
		}
	}
	if len(runs) != 1 {
		return bc, builder, fmt.Errorf("build stage %q: want exactly one RUN with go build; got %d", from, len(runs))
	}
	words, err := shellWords(runs[0].args, vars)
	if err != nil {
		return bc, builder, fmt.Errorf("Dockerfile line %d: %w", runs[0].line, err)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		bc.env, words = append(bc.env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return bc, builder, fmt.Errorf("Dockerfile line %d: want [NAME=value...] go build ...; got %q", runs[0].line, words)
	}
	bc.argv = words
	if o := slices.Index(words, "-o"); o > 0 && o+1 < len(words) {
		bc.out = words[o+1]
	}
	if bc.out != src {
		return bc, builder, fmt.Errorf("go build writes %q but the final stage copies %q", bc.out, src)
	}
	return bc, builder, nil
}

// dockerfileBuild runs the Dockerfile's go build command, as its builder
// stage would with --build-arg VERSION=version for the platform
// linux/<goarch> (BuildKit's TARGETOS and TARGETARCH): in a copy of the
// build context (root less what .dockerignore excludes), writing the binary
// into outDir instead of the image's path. It returns the binary's path.
func dockerfileBuild(root, outDir, version, goarch string) (string, error) {
	stages, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return "", err
	}
	bc, _, err := builderCommand(stages, map[string]string{"VERSION": version, "TARGETOS": "linux", "TARGETARCH": goarch})
	if err != nil {
		return "", err
	}
	ignore, err := parseDockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return "", err
	}
	src := filepath.Join(outDir, "context")
	if err := copyContext(root, src, ignore); err != nil {
		return "", err
	}
	bin := filepath.Join(outDir, "gatehouse")
	argv := slices.Clone(bc.argv)
	argv[slices.Index(argv, "-o")+1] = bin
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), bc.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%q %q in the build context: %w\n%s", bc.env, argv, err, out)
	}
	return bin, nil
}

// ignoreRule is one .dockerignore line; negate re-includes ("!pattern").
type ignoreRule struct {
	pattern string
	negate  bool
}

// parseDockerignore reads .dockerignore. Patterns are path.Match patterns
// relative to the context root, as Docker reads them; "**" is refused
// rather than matched differently from Docker.
func parseDockerignore(path string) ([]ignoreRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rules []ignoreRule
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, strings.TrimSpace(p)
		}
		if strings.Contains(line, "**") {
			return nil, fmt.Errorf("%s: %q: ** is not supported by this test", path, line)
		}
		r.pattern = strings.TrimPrefix(pathpkg.Clean("/"+line), "/")
		if _, err := pathpkg.Match(r.pattern, ""); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// excluded reports whether the slash-separated path rel, or a directory
// holding it, matches the rules; the last matching rule decides.
func excluded(rules []ignoreRule, rel string) bool {
	out := false
	for _, r := range rules {
		for p := rel; p != "." && p != "/"; p = pathpkg.Dir(p) {
			if ok, _ := pathpkg.Match(r.pattern, p); ok {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// copyContext copies the files of root that the rules leave in the build
// context to dst.
func copyContext(root, dst string, rules []ignoreRule) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		if excluded(rules, filepath.ToSlash(rel)) {
			if d.IsDir() && !slices.ContainsFunc(rules, func(r ignoreRule) bool { return r.negate }) {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // sockets, devices: never part of a build
	})
}

func TestDockerignore(t *testing.T) {
	rules, err := parseDockerignore(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	// What the image build needs stays in the context; what would leak
	// history or bloat it does not.
	for rel, want := range map[string]bool{
		"go.mod":              false,
		"go.sum":              false,
		"main.go":             false,
		"cli/cli.go":          false,
		"config/load.go":      false,
		".git":                true,
		".git/config":         true,
		"gatehouse":           true,
		"helm/gatehouse/x":    true,
		"docs/kubernetes.md":  true,
		"sessionstore/x.test": false, // Docker's *.test matches at the root only
		"gatehouse.test":      true,
	} {
		if got := excluded(rules, rel); got != want {
			t.Errorf("excluded(%q) = %v; want %v", rel, got, want)
		}
	}
}

func TestShellWords(t *testing.T) {
	vars := map[string]string{"VERSION": "v1.2.3", "EMPTY": ""}
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: `go build .`, want: []string{"go", "build", "."}},
		{in: `CGO_ENABLED=0  go	build`, want: []string{"CGO_ENABLED=0", "go", "build"}},
		{in: `-ldflags "-s -w -X a.b=${VERSION}"`, want: []string{"-ldflags", "-s -w -X a.b=v1.2.3"}},
		{in: `"$VERSION-x" '$VERSION' ""`, want: []string{"v1.2.3-x", "$VERSION", ""}},
		{in: `"a\"b\\c\$d" e\ f`, want: []string{`a"b\c$d`, "e f"}},
		{in: `x"${EMPTY}"y`, want: []string{"xy"}},
		{in: `go build && rm -rf /`, wantErr: true},
		{in: `go build; true`, wantErr: true},
		{in: `go build $VERSION`, wantErr: true}, // unquoted: the shell would split it
		{in: `go build "$(id)"`, wantErr: true},
		{in: "go build \"`id`\"", wantErr: true},
		{in: `go build "${UNDECLARED}"`, wantErr: true},
		{in: `go build "${VERSION:-x}"`, wantErr: true},
		{in: `go build *.go`, wantErr: true},
		{in: `go build "unterminated`, wantErr: true},
		{in: `go build > log`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.in, vars)
		if tt.wantErr {
			if err == nil {
				t.Errorf("shellWords(%q) = %q; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestDockerfileImage checks the final image's promises: distroless static,
// non-root, both listeners exposed, the healthcheck subcommand as the health
// check (there is no shell), and the serve command the chart also runs.
func TestDockerfileImage(t *testing.T) {
	stages, err := parseDockerfile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if _, builder, err := builderCommand(stages, nil); err != nil {
		t.Fatal(err)
	} else if !strings.HasPrefix(builder.image, "golang:1.26") {
		t.Errorf("builder stage FROM %s; want golang:1.26", builder.image)
	}
	final := stages[len(stages)-1]
	if got, want := final.image, "gcr.io/distroless/static-debian12:nonroot"; got != want {
		t.Errorf("final stage FROM %s; want %s", got, want)
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("final stage has RUN at line %d; the distroless image has no shell", runs[0].line)
	}
	last := func(cmd string) string {
		all := final.all(cmd)
		if len(all) == 0 {
			t.Errorf("final stage has no %s", cmd)
			return ""
		}
		return all[len(all)-1].args
	}
	if user, _, _ := strings.Cut(last("USER"), ":"); user != "65532" {
		t.Errorf("USER %s; want 65532 (distroless nonroot)", last("USER"))
	}
	var exposed []string
	for _, in := range final.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(in.args)...)
	}
	for _, port := range []string{"4180", "9180"} {
		if !slices.Contains(exposed, port) {
			t.Errorf("EXPOSE %q; want %s among them", exposed, port)
		}
	}
	hc := last("HEALTHCHECK")
	if _, cmd, ok := strings.Cut(hc, "CMD "); !ok {
		t.Errorf("HEALTHCHECK %s; want CMD [\"/gatehouse\", \"healthcheck\"]", hc)
	} else if got, err := execForm(cmd); err != nil || !slices.Equal(got, []string{"/gatehouse", "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD %s (%v); want [\"/gatehouse\", \"healthcheck\"]", cmd, err)
	}
	if got, err := execForm(last("ENTRYPOINT")); err != nil || !slices.Equal(got, []string{"/gatehouse"}) {
		t.Errorf("ENTRYPOINT %q (%v); want [\"/gatehouse\"]", got, err)
	}
	if got, err := execForm(last("CMD")); err != nil || !slices.Equal(got, imageCmd) {
		t.Errorf("CMD %q (%v); want %q", got, err, imageCmd)
	}
}

// imageCmd is the image's CMD, which the chart's container args repeat.
var imageCmd = []string{"serve", "--config", "/etc/gatehouse/config.yaml"}

// TestDockerfileBuildIsStatic runs the Dockerfile's go build command and
// checks that the binary needs nothing from the distroless image (no
// dynamic loader, no shared libraries), is stripped, and reports the
// version stamped through the VERSION build argument.
func TestDockerfileBuildIsStatic(t *testing.T) {
	bin := gatehouseBinary(t)
	checkStaticBinary(t, bin, runtime.GOARCH)

	out, err := runGatehouse(t, "version")
	if err != nil {
		t.Fatalf("gatehouse version: %v\n%s", err, out)
	}
	if got, want := out, "gatehouse "+testVersion+"\n"; got != want {
		t.Errorf("gatehouse version printed %q; want %q", got, want)
	}
}

// TestDockerfileMultiArch: the build stage runs on the build machine's
// platform and cross-compiles for the target's, so one docker buildx build
// --platform linux/amd64,linux/arm64 makes both images without emulation.
// The test runs the Dockerfile's command as BuildKit would for linux/arm64
// (or amd64 on an arm64 machine) and checks the binary is for that machine.
func TestDockerfileMultiArch(t *testing.T) {
	stages, err := parseDockerfile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	bc, builder, err := builderCommand(stages, map[string]string{"TARGETOS": "linux", "TARGETARCH": "riscv64"})
	if err != nil {
		t.Fatal(err)
	}
	if builder.platform != "$BUILDPLATFORM" {
		t.Errorf("build stage FROM --platform=%q; want $BUILDPLATFORM, so it compiles natively instead of under emulation", builder.platform)
	}
	for _, want := range []string{"GOOS=linux", "GOARCH=riscv64", "CGO_ENABLED=0"} {
		if !slices.Contains(bc.env, want) {
			t.Errorf("go build environment %q lacks %s: the build must follow TARGETOS and TARGETARCH", bc.env, want)
		}
	}
	if final := stages[len(stages)-1]; final.platform != "" {
		t.Errorf("final stage FROM --platform=%s; want none, so it is the target's platform", final.platform)
	}

	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	bin, err := dockerfileBuild(repoRoot(t), filepath.Join(workDir, "bin-"+other), testVersion, other)
	if err != nil {
		t.Fatalf("building gatehouse for linux/%s with the Dockerfile's command: %v", other, err)
	}
	checkStaticBinary(t, bin, other)
}

// elfMachines maps GOARCH to the ELF machine its binaries declare.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkStaticBinary checks that bin is a static, stripped, trimmed linux
// binary of gatehouse for goarch.
func checkStaticBinary(t *testing.T, bin, goarch string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if want, ok := elfMachines[goarch]; !ok {
		t.Fatalf("no ELF machine known for GOARCH %s", goarch)
	} else if f.Machine != want {
		t.Errorf("%s: ELF machine %v; want %v (GOARCH %s)", bin, f.Machine, want, goarch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v present; want a static binary (is CGO_ENABLED=0 set?)", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Errorf("section .dynamic present; want a static binary")
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("DT_NEEDED libraries %q (%v); want none", libs, err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("section %s present; want it stripped by -ldflags \"-s -w\"", s.Name)
		}
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": goarch} {
		if got := settings[k]; got != want {
			t.Errorf("build setting %s = %q; want %q", k, got, want)
		}
	}
	if got, want := bi.Main.Path, "github.com/gatehouse/gatehouse"; got != want {
		t.Errorf("main module %q; want %q", got, want)
	}
}
