package oidcclient

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Back-channel logout tokens are accepted for logoutMaxAge after their iat
// (and up to clockSkew before it): the provider sends them at once, so an
// old one is a replay. The window also bounds tokens without exp, which the
// final Back-Channel Logout 1.0 does not require.
const logoutMaxAge = 5 * time.Minute

// backchannelLogoutEvent is the events member that makes a JWT a logout token.
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Logout is a verified OpenID Connect Back-Channel Logout token.
type Logout struct {
	Subject string // may be empty when SessionID is set
	// SessionID is the provider's sid: the one login to end. Empty means
	// every session of Subject.
	SessionID string
	// JTI is the token's unique id. A logout token may be used once: the
	// caller remembers JTI (on every replica) until Until and refuses it
	// again meanwhile.
	JTI string
	// Until is when the token stops being accepted (its iat window or its
	// exp, whichever ends first, plus the clock skew allowed).
	Until time.Time
}

// VerifyLogout verifies a back-channel logout token as OpenID Connect
// Back-Channel Logout 1.0 section 2.6 says:
//   - typ header logout+jwt or JWT (any case, "application/" allowed) or none;
//   - signed by the provider's keys with a pinned algorithm (never none);
//   - iss the provider, aud containing our client id;
//   - iat (required) within the last 5 minutes, or up to a minute ahead;
//     exp (optional) not passed; nbf (optional) reached; all JSON numbers;
//   - jti present; sub, sid or both present;
//   - events an object whose http://schemas.openid.net/event/backchannel-logout
//     member is a JSON object;
//   - no nonce (an ID token is not a logout token), and no Keycloak typ
//     claim other than Logout.
//
// Replay is the caller's to refuse, with JTI and Until. A refusal for the
// token's own sake wraps ErrInvalidToken (answer 400); not being able to
// check it wraps ErrUnavailable (answer 5xx, so the provider retries). A
// token signed by a key the provider's key set did not have when it was
// fetched less than KeyRefreshInterval ago is ErrUnavailable too: a provider
// that rotated its key just before sending it succeeds on its retry.
func (c *Client) VerifyLogout(ctx context.Context, raw string) (*Logout, error) {
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	payload, err := d.keys.verify(ctx, raw, func(t string) error {
		switch t {
		case "", "jwt", "logout+jwt":
			return nil
		}
		return fmt.Errorf("%w: token type %q is not a logout token", ErrInvalidToken, clip(t))
	}, true)
	if err != nil {
		return nil, err
	}
	cl, err := parseClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := c.checkLogout(cl, c.cfg.Now()); err != nil {
		return nil, fmt.Errorf("%w: logout token: %w", ErrInvalidToken, err)
	}
	until := cl.iat.Add(logoutMaxAge)
	if cl.hasExp && cl.exp.Before(until) {
		until = cl.exp
	}
	return &Logout{
		Subject:   cl.sub,
		SessionID: cl.string("sid"),
		JTI:       cl.jti,
		Until:     until.Add(clockSkew),
	}, nil
}

func (c *Client) checkLogout(cl *claimSet, now time.Time) error {
	switch {
	case cl.iss != c.cfg.Issuer:
		return fmt.Errorf("issuer %q; want %q", clip(cl.iss), c.cfg.Issuer)
	case !anyOf(cl.aud, []string{c.cfg.ClientID}):
		return fmt.Errorf("audience %q does not contain our client id", clipAll(cl.aud))
	case !cl.hasIat:
		return fmt.Errorf("no iat")
	case cl.iat.Before(now.Add(-logoutMaxAge)):
		return fmt.Errorf("issued at %s, more than %s ago", cl.iat.UTC().Format(time.RFC3339), logoutMaxAge)
	case cl.iat.After(now.Add(clockSkew)):
		return fmt.Errorf("issued in the future, at %s", cl.iat.UTC().Format(time.RFC3339))
	case cl.hasExp && now.After(cl.exp):
		return fmt.Errorf("expired at %s", cl.exp.UTC().Format(time.RFC3339))
	case cl.hasNbf && now.Add(clockSkew).Before(cl.nbf):
		return fmt.Errorf("not valid before %s", cl.nbf.UTC().Format(time.RFC3339))
	case cl.jti == "":
		return fmt.Errorf("no jti")
	case cl.sub == "" && cl.string("sid") == "":
		return fmt.Errorf("neither sub nor sid")
	case cl.has("nonce"):
		return fmt.Errorf("has a nonce, as ID tokens do")
	}
	if kc, ok := cl.all["typ"].(string); ok && !strings.EqualFold(kc, "logout") {
		return fmt.Errorf("typ claim %q", clip(kc))
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(cl.raw["events"], &events); err != nil || events == nil {
		return fmt.Errorf("events is not a JSON object")
	}
	if ev, ok := events[backchannelLogoutEvent]; !ok || kind(ev) != "an object" {
		return fmt.Errorf("events has no %s object", backchannelLogoutEvent)
	}
	return nil
}
