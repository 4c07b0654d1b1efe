package oidcclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ClaimPath addresses a value inside a token's or userinfo's claims, for
// providers that nest groups and roles: Keycloak's realm_access.roles and
// resource_access.<client>.roles, Auth0's namespaced claim URLs, Hydra's
// ext.groups in introspection answers. The zero value addresses nothing.
//
// Syntax (ParseClaimPath):
//
//	groups                          the top-level claim "groups"
//	realm_access.roles              member "roles" of the object "realm_access"
//	resource_access.my-app.roles    one more level
//	resource_access["my.app"].roles a name with dots (or any character) in brackets,
//	                                as a JSON string
//	["https://example.com/groups"]  a top-level claim whose name has dots
//	https://example.com/groups      the same: a path that starts with http:// or
//	                                https:// is one claim name, taken whole
//
// A bare name is one or more characters other than '.', '[', ']', '"' and
// white space; names are matched exactly (case-sensitive).
type ClaimPath struct {
	names []string
	src   string
}

// maxClaimPathDepth bounds how deep a path may reach; real providers nest
// two or three levels.
const maxClaimPathDepth = 16

// ParseClaimPath parses a claim path; see ClaimPath for the syntax.
func ParseClaimPath(s string) (ClaimPath, error) {
	if s == "" {
		return ClaimPath{}, errors.New("empty claim path")
	}
	if !utf8.ValidString(s) {
		return ClaimPath{}, fmt.Errorf("claim path %q: not UTF-8", s)
	}
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
		if strings.ContainsAny(s, " \t\r\n") {
			return ClaimPath{}, fmt.Errorf("claim path %q: a claim URL has no white space", s)
		}
		return ClaimPath{names: []string{s}, src: s}, nil
	}
	var names []string
	rest := s
	for {
		var name string
		switch {
		case strings.HasPrefix(rest, "["):
			end, err := quotedEnd(rest[1:])
			if err != nil {
				return ClaimPath{}, fmt.Errorf("claim path %q: %w", s, err)
			}
			if err := json.Unmarshal([]byte(rest[1:1+end]), &name); err != nil {
				return ClaimPath{}, fmt.Errorf("claim path %q: bracketed name: %w", s, err)
			}
			rest = rest[1+end:]
			if !strings.HasPrefix(rest, "]") {
				return ClaimPath{}, fmt.Errorf(`claim path %q: want "]" after a bracketed name`, s)
			}
			rest = rest[1:]
		default:
			i := strings.IndexAny(rest, `.[]" `+"\t\r\n")
			if i < 0 {
				i = len(rest)
			}
			name, rest = rest[:i], rest[i:]
			if name == "" {
				return ClaimPath{}, fmt.Errorf("claim path %q: empty name (write names with dots or spaces as [\"a.b\"])", s)
			}
		}
		names = append(names, name)
		if len(names) > maxClaimPathDepth {
			return ClaimPath{}, fmt.Errorf("claim path %q: deeper than %d", s, maxClaimPathDepth)
		}
		switch {
		case rest == "":
			return ClaimPath{names: names, src: s}, nil
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			if rest == "" {
				return ClaimPath{}, fmt.Errorf("claim path %q: ends with \".\"", s)
			}
		case strings.HasPrefix(rest, "["):
			// a["b"]: a bracketed name may follow without a dot.
		default:
			return ClaimPath{}, fmt.Errorf("claim path %q: unexpected %q", s, rest[:1])
		}
	}
}

// quotedEnd returns the length of the JSON string that s starts with,
// quotes included.
func quotedEnd(s string) (int, error) {
	if !strings.HasPrefix(s, `"`) {
		return 0, errors.New(`a bracketed name is a JSON string: ["a.b"]`)
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errors.New("unterminated string in brackets")
}

// String returns the path as it was written.
func (p ClaimPath) String() string { return p.src }

// Lookup returns the value at p in claims (as encoding/json decodes into
// any), and whether it is there. A null value counts as absent.
func (p ClaimPath) Lookup(claims map[string]any) (any, bool) {
	if len(p.names) == 0 {
		return nil, false
	}
	var cur any = claims
	for _, name := range p.names {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[name]; !ok || cur == nil {
			return nil, false
		}
	}
	return cur, true
}

// mustClaimPaths parses paths, keeping one it cannot parse as a literal
// top-level claim name: config.Validate refuses such paths before a Client
// is built, and a Client has no error to return from New.
func mustClaimPaths(paths []string) []ClaimPath {
	out := make([]ClaimPath, 0, len(paths))
	for _, s := range paths {
		if s == "" {
			continue
		}
		p, err := ParseClaimPath(s)
		if err != nil {
			p = ClaimPath{names: []string{s}, src: s}
		}
		out = append(out, p)
	}
	return out
}

// groupsAt reads the groups at every path of paths and merges them, in
// order, without duplicates or empty names. A value may be an array (its
// string elements count; others are skipped) or one string. found reports
// whether any path was present, even with an empty list: a provider that
// sends "groups": [] has said the user has none.
func groupsAt(claims map[string]any, paths []ClaimPath) (groups []string, found bool) {
	seen := map[string]bool{}
	add := func(g string) {
		if g != "" && !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	for _, p := range paths {
		v, ok := p.Lookup(claims)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case []any:
			found = true
			for _, e := range v {
				if s, ok := e.(string); ok {
					add(s)
				}
			}
		case string:
			found = true
			add(v)
		}
	}
	return groups, found
}

// identity reads an Identity from decoded claims, with the groups at the
// client's paths (oidc.groups_claim, then oidc.groups_claims) merged.
// found reports whether any of those paths was present.
func (c *Client) identity(all map[string]any) (id Identity, found bool) {
	id = IdentityFromClaims(all, "")
	id.Groups, found = groupsAt(all, c.groups)
	return id, found
}
