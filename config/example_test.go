package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// examplePath is the example configuration shipped at the module root.
const examplePath = "../config.example.yaml"

// The example loads and validates once its secrets exist.
func TestExampleConfigValidates(t *testing.T) {
	dir := t.TempDir()
	clientSecret := filepath.Join(dir, "client-secret")
	cookieSecrets := filepath.Join(dir, "cookie-secrets")
	if err := os.WriteFile(clientSecret, []byte("example-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cookieSecrets, []byte("example-cookie-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(examplePath, env(map[string]string{
		"GATEHOUSE_OIDC_CLIENT_SECRET_FILE": clientSecret,
		"GATEHOUSE_COOKIE_SECRETS_FILE":     cookieSecrets,
	}))
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(%s): %v", examplePath, err)
	}
}

// schemaKeys lists every key of struct type t in field order, dotted, with
// list-of-struct elements written as "routes.name".
func schemaKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if !f.IsExported() || tag == "" {
			continue
		}
		key := prefix + tag
		out = append(out, key)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			out = append(out, schemaKeys(f.Type, key+".")...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, schemaKeys(f.Type.Elem(), key+".")...)
		}
	}
	return out
}

// documentKeys lists the keys of a YAML mapping in document order, like
// schemaKeys; the first element of a list of mappings stands for all.
func documentKeys(n *yaml.Node, prefix string) []string {
	if n.Kind == yaml.DocumentNode {
		return documentKeys(n.Content[0], prefix)
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := prefix + n.Content[i].Value
		out = append(out, key)
		switch val := n.Content[i+1]; {
		case val.Kind == yaml.MappingNode && !strings.HasSuffix(key, ".claims"):
			out = append(out, documentKeys(val, key+".")...)
		case val.Kind == yaml.SequenceNode && len(val.Content) > 0 && val.Content[0].Kind == yaml.MappingNode:
			out = append(out, documentKeys(val.Content[0], key+".")...)
		}
	}
	return out
}

// The example names every key, in the order of the Config types (which is
// DESIGN.md's order, extended).
func TestExampleConfigHasEveryKeyInOrder(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := documentKeys(&doc, "")
	want := schemaKeys(reflect.TypeFor[Config](), "")
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("%s does not document %q", examplePath, k)
		}
	}
	if !t.Failed() && !slices.Equal(got, want) {
		t.Errorf("%s lists keys in this order:\n%s\nwant the Config types' order:\n%s", examplePath, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Every value in the example is the default, except those that have none.
func TestExampleConfigShowsDefaults(t *testing.T) {
	// Keys without a default: the example shows a typical value.
	examples := map[string]bool{
		"public_url": true, "oidc.issuer": true, "oidc.client_id": true,
		"oidc.client_secret_file": true, "cookie.secrets_file": true, "upstream": true,
		"token.issuer": true, // defaults to public_url
	}
	ex, err := Load(examplePath, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	def, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	exV, defV := reflect.ValueOf(*ex), reflect.ValueOf(*def)
	for _, l := range leaves {
		if examples[l.key] {
			continue
		}
		got, want := exV.FieldByIndex(l.index).Interface(), defV.FieldByIndex(l.index).Interface()
		if v := reflect.ValueOf(got); v.Kind() == reflect.Slice && v.Len() == 0 {
			got = reflect.Zero(v.Type()).Interface() // [] in the example is the nil default
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %v; the default is %v", examplePath, l.key, got, want)
		}
	}
	if ex.Token.Issuer != ex.PublicURL {
		t.Errorf("%s: token.issuer = %q; want it to default to public_url %q", examplePath, ex.Token.Issuer, ex.PublicURL)
	}
}
