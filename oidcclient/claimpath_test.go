package oidcclient

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseClaimPath(t *testing.T) {
	for _, tc := range []struct {
		in    string
		names []string // nil: a parse error
	}{
		{"groups", []string{"groups"}},
		{"realm_access.roles", []string{"realm_access", "roles"}},
		{"resource_access.my-app.roles", []string{"resource_access", "my-app", "roles"}},
		{`resource_access["my.app"].roles`, []string{"resource_access", "my.app", "roles"}},
		{`resource_access.["my.app"].roles`, []string{"resource_access", "my.app", "roles"}},
		{`["https://example.com/groups"]`, []string{"https://example.com/groups"}},
		{"https://example.com/groups", []string{"https://example.com/groups"}},
		{"http://schemas.example.com/claims/groups", []string{"http://schemas.example.com/claims/groups"}},
		{`["a\"b"]`, []string{`a"b`}},
		{`["with space"].x`, []string{"with space", "x"}},
		{`["a\u002eb"]`, []string{"a.b"}},
		{"cognito:groups", []string{"cognito:groups"}},
		{"ext.groups", []string{"ext", "groups"}},
		{`[""]`, []string{""}},

		{"", nil},
		{".groups", nil},
		{"groups.", nil},
		{"a..b", nil},
		{"a b", nil},
		{`a"b`, nil},
		{"a]", nil},
		{"[groups]", nil},
		{`["open`, nil},
		{`["a"`, nil},
		{`["a"]b`, nil},
		{`["\x"]`, nil},
		{"https://example.com/a b", nil},
		{strings.Repeat("a.", maxClaimPathDepth) + "a", nil},
	} {
		p, err := ParseClaimPath(tc.in)
		switch {
		case tc.names == nil && err == nil:
			t.Errorf("ParseClaimPath(%q) = %q; want an error", tc.in, p.names)
		case tc.names != nil && err != nil:
			t.Errorf("ParseClaimPath(%q): %v", tc.in, err)
		case tc.names != nil && !reflect.DeepEqual(p.names, tc.names):
			t.Errorf("ParseClaimPath(%q) = %q; want %q", tc.in, p.names, tc.names)
		case tc.names != nil && p.String() != tc.in:
			t.Errorf("ParseClaimPath(%q).String() = %q", tc.in, p.String())
		}
	}
}

// keycloak is an access token's claims as Keycloak shapes them, with an
// Auth0-style namespaced claim and Hydra's ext added.
const keycloak = `{
  "sub": "u1",
  "groups": ["/staff", "admins"],
  "realm_access": {"roles": ["offline_access", "admins", "uma_authorization"]},
  "resource_access": {
    "gatehouse": {"roles": ["editor"]},
    "my.app": {"roles": ["viewer", "editor"]},
    "broken": {"roles": "single"},
    "odd": {"roles": [1, null, "", "ok", {"x": 1}]}
  },
  "https://example.com/groups": ["ns-group"],
  "ext": {"groups": ["from-ext"]},
  "empty": [],
  "nothing": null,
  "number": 7
}`

func TestGroupsAt(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(keycloak), &claims); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		paths []string
		want  []string
		found bool
	}{
		{[]string{"groups"}, []string{"/staff", "admins"}, true},
		{[]string{"realm_access.roles"}, []string{"offline_access", "admins", "uma_authorization"}, true},
		{[]string{"resource_access.gatehouse.roles"}, []string{"editor"}, true},
		{[]string{`resource_access["my.app"].roles`}, []string{"viewer", "editor"}, true},
		{[]string{"https://example.com/groups"}, []string{"ns-group"}, true},
		{[]string{`["https://example.com/groups"]`}, []string{"ns-group"}, true},
		{[]string{"ext.groups"}, []string{"from-ext"}, true},
		// One string is one group; non-strings and empty strings are skipped.
		{[]string{"resource_access.broken.roles"}, []string{"single"}, true},
		{[]string{"resource_access.odd.roles"}, []string{"ok"}, true},
		// Merged in order, without duplicates.
		{[]string{"groups", "realm_access.roles", "resource_access.gatehouse.roles", `resource_access["my.app"].roles`},
			[]string{"/staff", "admins", "offline_access", "uma_authorization", "editor", "viewer"}, true},
		// Present but empty: the provider said "none".
		{[]string{"empty"}, nil, true},
		// Absent, null, a number, or a path through a non-object.
		{[]string{"missing", "nothing", "number", "groups.x", "realm_access.roles.x", "resource_access.nope.roles"}, nil, false},
		{nil, nil, false},
	} {
		got, found := groupsAt(claims, mustClaimPaths(tc.paths))
		if !reflect.DeepEqual(got, tc.want) || found != tc.found {
			t.Errorf("groupsAt(%q) = %q, %v; want %q, %v", tc.paths, got, found, tc.want, tc.found)
		}
	}
}

// TestIdentityGroupsFromPaths: a Client reads groups from groups_claim and
// every groups_claims path, merged.
func TestIdentityGroupsFromPaths(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(keycloak), &claims); err != nil {
		t.Fatal(err)
	}
	c := New(Config{GroupsClaim: "realm_access.roles", GroupsClaims: []string{"resource_access.gatehouse.roles", "https://example.com/groups"}})
	id, found := c.identity(claims)
	want := []string{"offline_access", "admins", "uma_authorization", "editor", "ns-group"}
	if !found || !reflect.DeepEqual(id.Groups, want) || id.Subject != "u1" {
		t.Errorf("identity: groups %q (found %v), sub %q; want %q", id.Groups, found, id.Subject, want)
	}
	// The default is the groups claim.
	id, _ = New(Config{}).identity(claims)
	if !reflect.DeepEqual(id.Groups, []string{"/staff", "admins"}) {
		t.Errorf("default groups %q", id.Groups)
	}
}

// FuzzParseClaimPath: parsing never panics; a parsed path prints as it was
// written, and a path made of the parsed names in bracket syntax parses to
// the same names.
func FuzzParseClaimPath(f *testing.F) {
	for _, s := range []string{
		"groups", "realm_access.roles", `resource_access["my.app"].roles`,
		"https://example.com/groups", `["a\"b"]`, `["\u00e9"]`, "a..b", `["`, "[", "]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseClaimPath(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q; want %q", p.String(), s)
		}
		if len(p.names) == 0 || len(p.names) > maxClaimPathDepth {
			t.Fatalf("%q parsed to %d names", s, len(p.names))
		}
		var b strings.Builder
		for _, n := range p.names {
			q, _ := json.Marshal(n)
			b.WriteString("[" + string(q) + "]")
		}
		again, err := ParseClaimPath(b.String())
		if err != nil {
			t.Fatalf("%q: its bracketed form %q: %v", s, b.String(), err)
		}
		if !reflect.DeepEqual(again.names, p.names) {
			t.Fatalf("%q: names %q; bracketed form gives %q", s, p.names, again.names)
		}
		// Lookup finds a value placed at exactly that path.
		var claims any = "leaf"
		for i := len(p.names) - 1; i >= 0; i-- {
			claims = map[string]any{p.names[i]: claims}
		}
		if v, ok := p.Lookup(claims.(map[string]any)); !ok || v != "leaf" {
			t.Fatalf("%q: Lookup = %v, %v; want the leaf", s, v, ok)
		}
	})
}
