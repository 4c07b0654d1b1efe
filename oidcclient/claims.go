package oidcclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// claimSet is a verified token's claims with the registered ones
// type-checked as RFC 7519 section 4.1 says: iss, sub and jti are strings,
// aud a string or an array of strings, exp, iat and nbf JSON numbers (a
// string "exp" is refused, not read as a date). The other claims Gatehouse
// reads (azp, client_id, sid) must be strings when present.
type claimSet struct {
	iss, sub, jti          string
	aud                    []string
	exp, iat, nbf          time.Time
	hasExp, hasIat, hasNbf bool
	// raw holds every claim as sent, for presence tests and typed reads.
	raw map[string]json.RawMessage
	// all holds every claim decoded as encoding/json does, for claim mappings.
	all map[string]any
}

// maxNumericDate keeps seconds where float64 is exact and time.Unix cannot
// overflow.
const maxNumericDate = 1 << 53

// parseClaims decodes and type-checks a verified payload. Errors do not
// wrap ErrInvalidToken; callers add it.
func parseClaims(payload []byte) (*claimSet, error) {
	c := &claimSet{}
	if err := json.Unmarshal(payload, &c.raw); err != nil || c.raw == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	if err := json.Unmarshal(payload, &c.all); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	for name, dst := range map[string]*string{"iss": &c.iss, "sub": &c.sub, "jti": &c.jti} {
		if _, err := c.str(name, dst); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"azp", "client_id", "sid"} {
		if _, err := c.str(name, new(string)); err != nil {
			return nil, err
		}
	}
	if v, ok := c.raw["aud"]; ok {
		aud, err := parseAudience(v)
		if err != nil {
			return nil, fmt.Errorf("claim aud: %w", err)
		}
		c.aud = aud
	}
	for name, d := range map[string]struct {
		t   *time.Time
		has *bool
	}{"exp": {&c.exp, &c.hasExp}, "iat": {&c.iat, &c.hasIat}, "nbf": {&c.nbf, &c.hasNbf}} {
		v, ok := c.raw[name]
		if !ok {
			continue
		}
		t, err := parseNumericDate(v)
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		*d.t, *d.has = t, true
	}
	return c, nil
}

// str reads a claim that must be a JSON string when present.
func (c *claimSet) str(name string, dst *string) (present bool, err error) {
	v, ok := c.raw[name]
	if !ok {
		return false, nil
	}
	if len(v) == 0 || v[0] != '"' {
		return true, fmt.Errorf("claim %s: %s; want a string", name, kind(v))
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return true, fmt.Errorf("claim %s: %w", name, err)
	}
	return true, nil
}

// has reports whether the claim is present (even as null).
func (c *claimSet) has(name string) bool {
	_, ok := c.raw[name]
	return ok
}

// string returns a claim's string value, or "" when it is absent or not a
// string.
func (c *claimSet) string(name string) string {
	var s string
	if ok, err := c.str(name, &s); !ok || err != nil {
		return ""
	}
	return s
}

// kind names a JSON value's type for an error message.
func kind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// parseAudience accepts a string or an array of strings (RFC 7519 section
// 4.1.3).
func parseAudience(v json.RawMessage) ([]string, error) {
	switch kind(v) {
	case "a string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	case "an array":
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, errors.New("an array with an element that is not a string")
		}
		return list, nil
	}
	return nil, fmt.Errorf("%s; want a string or an array of strings", kind(v))
}

// parseNumericDate decodes an RFC 7519 NumericDate: a JSON number of
// seconds since the epoch, possibly fractional, not negative.
func parseNumericDate(v json.RawMessage) (time.Time, error) {
	if k := kind(v); k != "a number" {
		return time.Time{}, fmt.Errorf("%s; want a number (NumericDate)", k)
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return time.Time{}, err
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%v is out of range", f)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
