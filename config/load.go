package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable Load reads: a key's dotted path,
// upper-cased with "." replaced by "_", follows it, as in
// GATEHOUSE_OIDC_CLIENT_SECRET or GATEHOUSE_SESSION_IDLE_TIMEOUT.
const EnvPrefix = "GATEHOUSE_"

// maxProblems bounds how many structural problems of a file are listed.
const maxProblems = 50

// maxFileSize bounds the configuration file and every secret file.
const maxFileSize = 1 << 20

// Load reads the YAML file at path (path "" reads none: defaults and
// environment only), then applies GATEHOUSE_* environment variables read
// through getenv (nil reads none; list values are comma-separated; an empty
// value counts as unset), then reads the secrets named by the *_file keys,
// trimming trailing newlines. Routes come only from the file.
//
// Load fails on unreadable or malformed YAML, unknown keys (named with their
// line) and values of the wrong type. A *_file it cannot read is not an error
// here: Validate reports it with every other problem.
func Load(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	where := "environment"
	v := viper.New()
	def := defaults()
	defV := reflect.ValueOf(def)
	for _, l := range leaves {
		v.SetDefault(l.key, defV.FieldByIndex(l.index).Interface())
	}

	var rawRoutes any
	if path != "" {
		where = path
		doc, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		rawRoutes = doc["routes"]
		delete(doc, "routes")
		// MergeConfigMap lower-cases every key below it, route claim names
		// included (spf13/viper#373), so routes are decoded separately below.
		if err := v.MergeConfigMap(doc); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	// Set every known key explicitly: AutomaticEnv does not feed Unmarshal
	// for keys viper learns of no other way (spf13/viper#761), and getenv,
	// not os.Getenv, is the source.
	for _, l := range leaves {
		s := getenv(l.env)
		if s == "" {
			continue
		}
		if path != "" && where == path {
			where = path + " with " + EnvPrefix + "* variables"
		}
		if l.typ.Kind() == reflect.Slice {
			v.Set(l.key, splitList(s))
		} else {
			v.Set(l.key, s)
		}
	}

	var c Config
	if err := v.UnmarshalExact(&c, viper.DecodeHook(decodeHook())); err != nil {
		return nil, decodeError(where, "", err)
	}
	if rawRoutes != nil {
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook:       decodeHook(),
			ErrorUnused:      true,
			WeaklyTypedInput: true,
			Result:           &c.Routes,
		})
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := dec.Decode(rawRoutes); err != nil {
			return nil, decodeError(path, "routes", err)
		}
	}

	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.Token.Issuer == "" {
		c.Token.Issuer = c.PublicURL
	}
	c.resolveFiles()
	return &c, nil
}

// leaf is one configuration key that holds a value (not a section).
type leaf struct {
	key   string // dotted path, "session.idle_timeout"
	env   string // GATEHOUSE_SESSION_IDLE_TIMEOUT
	index []int  // reflect field index from Config
	typ   reflect.Type
}

// leaves lists every key of Config but routes, which come only from the file.
var leaves = collectLeaves(reflect.TypeFor[Config](), "", nil)

func collectLeaves(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if !f.IsExported() || tag == "" || tag == "routes" {
			continue
		}
		key := prefix + tag
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			out = append(out, collectLeaves(f.Type, key+".", idx)...)
			continue
		}
		env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		out = append(out, leaf{key: key, env: env, index: idx, typ: f.Type})
	}
	return out
}

// splitList splits a comma-separated environment value, dropping blanks.
func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// decodeHook converts YAML and environment strings to durations and lists.
// A bare number is refused as a duration unless it is 0: "30" would
// otherwise mean 30 nanoseconds.
func decodeHook() mapstructure.DecodeHookFunc {
	return func(from, to reflect.Type, data any) (any, error) {
		switch {
		case to == durationType && from != durationType:
			switch from.Kind() {
			case reflect.String:
				d, err := time.ParseDuration(strings.TrimSpace(reflect.ValueOf(data).String()))
				if err != nil {
					return nil, fmt.Errorf("%q is not a duration (write a number and a unit: 30s, 5m, 12h)", data)
				}
				return d, nil
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
				reflect.Float32, reflect.Float64:
				if reflect.ValueOf(data).IsZero() {
					return time.Duration(0), nil
				}
				return nil, fmt.Errorf("%v has no unit (write 30s, 5m, 12h)", data)
			}
		case from.Kind() == reflect.String && to.Kind() == reflect.Slice:
			return splitList(reflect.ValueOf(data).String()), nil
		}
		return data, nil
	}
}

// decodeError rewrites mapstructure's error, one "'key' problem" line per bad
// key, into "config: where:\n  key: problem" lines; prefix is prepended to
// every key.
func decodeError(where, prefix string, err error) error {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "error(s):\n\n"); ok {
		msg = rest
	}
	var b strings.Builder
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "'"); ok {
			if key, problem, ok := strings.Cut(rest, "' "); ok {
				switch {
				case prefix == "":
				case key == "", strings.HasPrefix(key, "["):
					key = prefix + key
				default:
					key = prefix + "." + key
				}
				line = problem
				if key != "" {
					line = key + ": " + problem
				}
			}
		}
		b.WriteString("\n  ")
		b.WriteString(line)
	}
	return fmt.Errorf("config: %s:%s", where, b.String())
}

// readFile parses the YAML file and checks its keys against Config, so that a
// typo is reported with its line before viper gets to lower-case anything.
func readFile(path string) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil // an empty file: all defaults
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", path)
	}
	var problems []string
	checkNode(&root, reflect.TypeFor[Config](), "", 0, &problems)
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems], fmt.Sprintf("and %d more", len(problems)-maxProblems))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	var doc map[string]any
	if err := root.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	pruneNulls(doc)
	return doc, nil
}

// checkNode checks that n has the shape of type t: mappings for structs
// (with only known keys), sequences for lists, scalars for values. It reports
// problems as "line N: key: problem". depth bounds "<<" merges into merges.
func checkNode(n *yaml.Node, t reflect.Type, key string, depth int, problems *[]string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth < 10 {
		n = n.Alias
		depth++
	}
	if depth >= 10 {
		*problems = append(*problems, fmt.Sprintf("line %d: %s: aliases nested too deeply", n.Line, key))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // null means "the default"
	}
	name := key
	if name == "" {
		name = "the top level"
	}
	bad := func(want string) {
		*problems = append(*problems, fmt.Sprintf("line %d: %s: must be %s", n.Line, name, want))
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			bad("a mapping of keys")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
				checkMerge(val, t, key, depth+1, problems)
				continue
			}
			f, ok := fieldByTag(t, k.Value)
			if !ok || k.Kind != yaml.ScalarNode {
				msg := fmt.Sprintf("line %d: unknown key %q", k.Line, joinKey(key, k.Value))
				if s := suggest(t, k.Value); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", joinKey(key, s))
				}
				*problems = append(*problems, msg)
				continue
			}
			checkNode(val, f.Type, joinKey(key, k.Value), depth, problems)
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			bad("a list")
			return
		}
		for i, e := range n.Content {
			checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", key, i), depth, problems)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind == yaml.ScalarNode {
			return // one value, or a comma-separated list
		}
		if n.Kind != yaml.SequenceNode {
			bad("a list")
			return
		}
		for i, e := range n.Content {
			checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", key, i), depth, problems)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				*problems = append(*problems, fmt.Sprintf("line %d: %s: keys must be plain strings", k.Line, name))
				continue
			}
			checkNode(val, t.Elem(), joinKey(key, k.Value), depth, problems)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			bad("a single value")
		}
	}
}

// checkMerge checks the value of a "<<" merge key: a mapping or a list of them.
func checkMerge(n *yaml.Node, t reflect.Type, key string, depth int, problems *[]string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth < 10 {
		n = n.Alias
		depth++
	}
	if n.Kind == yaml.SequenceNode {
		for _, e := range n.Content {
			checkNode(e, t, key, depth+1, problems)
		}
		return
	}
	checkNode(n, t, key, depth, problems)
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// suggest returns the key of struct type t closest to a mistyped one, if it
// is close enough to be the likely intent.
func suggest(t reflect.Type, typo string) string {
	best, bestDist := "", 3 // at most two edits away
	typo = strings.ToLower(typo)
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" {
			continue
		}
		if d := editDistance(typo, tag); d < bestDist {
			best, bestDist = tag, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fieldByTag finds the field of struct type t whose mapstructure tag is tag.
func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("mapstructure") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// pruneNulls removes null values from nested mappings, so that "oidc:" with
// nothing under it, or "issuer: ~", leaves the defaults in place.
func pruneNulls(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			pruneNulls(v)
		}
	}
}

// loadState records what Load did with the *_file keys.
type loadState struct {
	clientSecretFromFile     bool
	cookieSecretsFromFile    bool
	redisPasswordFromFile    bool
	sentinelPasswordFromFile bool
	problems                 []problem // files that could not be read
}

// resolveFiles reads the secrets the *_file keys name into their fields. An
// inline value set as well is left alone: Validate reports the conflict.
func (c *Config) resolveFiles() {
	if p := c.OIDC.ClientSecretFile; p != "" {
		s, err := readSecretFile(p)
		switch {
		case err != nil:
			c.loaded.problems = append(c.loaded.problems, problem{"oidc.client_secret_file", err.Error()})
		case c.OIDC.ClientSecret == "":
			c.OIDC.ClientSecret = s
			c.loaded.clientSecretFromFile = true
		}
	}
	if p := c.Cookie.SecretsFile; p != "" {
		lines, err := readSecretLines(p)
		switch {
		case err != nil:
			c.loaded.problems = append(c.loaded.problems, problem{"cookie.secrets_file", err.Error()})
		case len(c.Cookie.Secrets) == 0:
			c.Cookie.Secrets = lines
			c.loaded.cookieSecretsFromFile = true
		}
	}
	if p := c.Redis.PasswordFile; p != "" {
		s, err := readSecretFile(p)
		switch {
		case err != nil:
			c.loaded.problems = append(c.loaded.problems, problem{"redis.password_file", err.Error()})
		case c.Redis.Password == "":
			c.Redis.Password = s
			c.loaded.redisPasswordFromFile = true
		}
	}
	if p := c.Redis.SentinelPasswordFile; p != "" {
		s, err := readSecretFile(p)
		switch {
		case err != nil:
			c.loaded.problems = append(c.loaded.problems, problem{"redis.sentinel_password_file", err.Error()})
		case c.Redis.SentinelPassword == "":
			c.Redis.SentinelPassword = s
			c.loaded.sentinelPasswordFromFile = true
		}
	}
}

// readSecretFile reads a one-value secret file, without trailing newlines.
func readSecretFile(path string) (string, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: file is empty", path)
	}
	return s, nil
}

// readSecretLines reads a file of one secret a line, skipping blank lines and
// "#" comments.
func readSecretLines(path string) ([]string, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no secrets in file", path)
	}
	return out, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %s bytes", path, strconv.Itoa(maxFileSize))
	}
	return data, nil
}

// openRegular opens a regular file (or a symlink to one, as Kubernetes mounts
// Secrets), refusing directories, devices and FIFOs, which could block forever.
func openRegular(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "open" // what the user asked for, not how we checked
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return os.Open(path)
}

// EnvName returns the environment variable that sets the dotted key
// ("session.store" → GATEHOUSE_SESSION_STORE), and false for a key that does
// not exist or cannot be set that way (routes). Command-line overrides use
// it to feed the same path as the environment.
func EnvName(key string) (string, bool) {
	for _, l := range leaves {
		if l.key == key {
			return l.env, true
		}
	}
	return "", false
}
