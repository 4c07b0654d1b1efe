package oidcclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// clockSkew is how far in the future nbf and iat may lie: the provider's
// clock and ours disagree a little.
const clockSkew = time.Minute

// Bearer is a verified access token from a native or API client.
type Bearer struct {
	Identity Identity
	ClientID string // client_id, else azp, cid (Okta) or appid (Entra ID v1)
	Expiry   time.Time
	// IDToken: an ID token accepted as a bearer token because its audience is
	// in Config.AcceptIDTokens.
	IDToken bool
}

// VerifyAccessToken verifies an access token a native client presents:
// signed by the provider's keys with a pinned algorithm, issued by the
// provider, exp (required), nbf and iat numbers that hold now, a sub, an
// aud among Config.AcceptedAudiences, and the shape of an access token (see
// classify). ID tokens are refused unless their aud is among
// Config.AcceptIDTokens; logout tokens and other typed JWTs always are.
//
// A refusal for the token's own sake wraps ErrInvalidToken; not being able
// to check it (no discovery, keys unreachable) wraps ErrUnavailable.
func (c *Client) VerifyAccessToken(ctx context.Context, raw string) (*Bearer, error) {
	if len(c.cfg.AcceptedAudiences) == 0 && len(c.cfg.AcceptIDTokens) == 0 {
		return nil, fmt.Errorf("%w: bearer tokens are not accepted (api.accepted_audiences is empty)", ErrInvalidToken)
	}
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	var typ string
	payload, err := d.keys.verify(ctx, raw, func(t string) error {
		typ = t
		switch t {
		case "", "jwt", "at+jwt":
			return nil
		}
		return fmt.Errorf("%w: token type %q is not an access token", ErrInvalidToken, clip(t))
	}, false)
	if err != nil {
		return nil, err
	}
	cl, err := parseClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	now := c.cfg.Now()
	switch {
	case cl.iss != c.cfg.Issuer:
		return nil, fmt.Errorf("%w: issuer %q; want %q", ErrInvalidToken, clip(cl.iss), c.cfg.Issuer)
	case !cl.hasExp:
		return nil, fmt.Errorf("%w: no exp", ErrInvalidToken)
	case now.After(cl.exp):
		return nil, fmt.Errorf("%w: expired at %s", ErrInvalidToken, cl.exp.UTC().Format(time.RFC3339))
	case cl.hasNbf && now.Add(clockSkew).Before(cl.nbf):
		return nil, fmt.Errorf("%w: not valid before %s", ErrInvalidToken, cl.nbf.UTC().Format(time.RFC3339))
	case cl.hasIat && now.Add(clockSkew).Before(cl.iat):
		return nil, fmt.Errorf("%w: issued in the future, at %s", ErrInvalidToken, cl.iat.UTC().Format(time.RFC3339))
	case cl.sub == "":
		return nil, fmt.Errorf("%w: no sub", ErrInvalidToken)
	}
	kind, why := classify(typ, cl)
	b := &Bearer{Expiry: cl.exp}
	switch kind {
	case accessToken:
		if !anyOf(cl.aud, c.cfg.AcceptedAudiences) {
			return nil, fmt.Errorf("%w: audience %q is not in api.accepted_audiences", ErrInvalidToken, clipAll(cl.aud))
		}
	case idToken:
		if !anyOf(cl.aud, c.cfg.AcceptIDTokens) {
			return nil, fmt.Errorf("%w: an ID token, not an access token (%s), and its audience %q is not in api.accept_id_tokens", ErrInvalidToken, why, clipAll(cl.aud))
		}
		b.IDToken = true
	default:
		return nil, fmt.Errorf("%w: not an access token (%s)", ErrInvalidToken, why)
	}
	b.Identity, _ = c.identity(cl.all)
	b.Identity.Subject = cl.sub
	for _, k := range []string{"client_id", "azp", "cid", "appid"} {
		if b.ClientID = cl.string(k); b.ClientID != "" {
			break
		}
	}
	return b, nil
}

type tokenKind int

const (
	otherToken tokenKind = iota
	accessToken
	idToken
)

// classify tells an access token from an ID token the way real providers
// shape them, and says why. The first rule that applies decides:
//
//  1. events: a logout token or another security event token, never a bearer.
//  2. header typ at+jwt: an RFC 9068 access token (Auth0's RFC 9068 profile,
//     Keycloak and others when configured).
//  3. Keycloak's typ claim: Bearer is an access token, ID an ID token;
//     Refresh, Offline, Logout and Serialized-ID are neither; other values
//     decide nothing. Keycloak has put nonce into access tokens, so this
//     comes before rule 5.
//  4. Cognito's token_use claim: access or id.
//  5. nonce, at_hash, c_hash, s_hash: claims only ID tokens carry (OpenID
//     Connect Core 2, 3.1.3.6, 3.3.2.11; FAPI).
//  6. scope or scp (Auth0, Okta, Entra ID, Hydra, RFC 9068), cid (Okta),
//     appid (Entra ID v1), azpacr or appidacr (Entra ID): access-token claims.
//  7. azp: an ID token is issued to its own audience (aud contains azp, as
//     ZITADEL and Google shape them); an access token is issued to azp for
//     another audience.
//  8. client_id (RFC 9068; ZITADEL): an access token.
//  9. none of these: an ID token (Entra ID's and Okta's from a refresh carry
//     no nonce and nothing of the above).
func classify(typ string, cl *claimSet) (tokenKind, string) {
	if cl.has("events") {
		return otherToken, "it has events, as logout tokens do"
	}
	if typ == "at+jwt" {
		return accessToken, "typ at+jwt"
	}
	if kc, ok := cl.all["typ"].(string); ok {
		switch strings.ToLower(kc) {
		case "bearer":
			return accessToken, "typ claim Bearer"
		case "id":
			return idToken, "typ claim ID"
		case "refresh", "offline", "logout", "serialized-id":
			return otherToken, fmt.Sprintf("typ claim %q", kc)
		}
	}
	switch use, _ := cl.all["token_use"].(string); use {
	case "access":
		return accessToken, "token_use access"
	case "id":
		return idToken, "token_use id"
	}
	for _, k := range []string{"nonce", "at_hash", "c_hash", "s_hash"} {
		if cl.has(k) {
			return idToken, "it has " + k
		}
	}
	for _, k := range []string{"scope", "scp", "cid", "appid", "azpacr", "appidacr"} {
		if cl.has(k) {
			return accessToken, "it has " + k
		}
	}
	if azp := cl.string("azp"); azp != "" {
		if slices.Contains(cl.aud, azp) {
			return idToken, "its aud contains its azp"
		}
		return accessToken, "issued to azp for another audience"
	}
	if cl.has("client_id") {
		return accessToken, "it has client_id"
	}
	return idToken, "it has none of the claims access tokens carry"
}

func anyOf(have, want []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}

// maxQuoted bounds how much of a token's value an error repeats: errors are
// logged, and the value is whatever the sender chose.
const maxQuoted = 64

func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

func clipAll(ss []string) []string {
	if len(ss) > 4 {
		ss = ss[:4]
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clip(s)
	}
	return out
}
