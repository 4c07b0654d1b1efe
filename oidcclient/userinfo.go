package oidcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxUserinfoSize bounds a userinfo answer; a user in a thousand groups
// stays far below it.
const maxUserinfoSize = 1 << 20

// userinfoGroups asks the provider's userinfo endpoint (OpenID Connect
// Core 5.3) who accessToken's user is, and reads the groups at the
// client's group paths. answered is false, with no error, when the
// provider advertises no userinfo endpoint. The answer must be about
// subject (5.3.2: its sub is checked); a signed answer (application/jwt)
// must verify with the provider's keys and name the provider and this
// client.
func (c *Client) userinfoGroups(ctx context.Context, d *discovered, accessToken, subject string) (groups []string, found, answered bool, err error) {
	endpoint := d.provider.UserInfoEndpoint()
	if endpoint == "" || accessToken == "" {
		return nil, false, false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, false, false, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json, application/jwt")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, false, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserinfoSize+1))
	if err != nil {
		return nil, false, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, false, fmt.Errorf("userinfo answered %s", resp.Status)
	}
	if len(body) > maxUserinfoSize {
		return nil, false, false, fmt.Errorf("userinfo answer longer than %d bytes", maxUserinfoSize)
	}
	var claims map[string]any
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/jwt" {
		payload, err := d.keys.verify(ctx, strings.TrimSpace(string(body)), nil, false)
		if err != nil {
			return nil, false, false, fmt.Errorf("signed userinfo: %w", err)
		}
		cl, err := parseClaims(payload)
		if err != nil {
			return nil, false, false, fmt.Errorf("signed userinfo: %w", err)
		}
		if cl.iss != c.cfg.Issuer || !anyOf(cl.aud, []string{c.cfg.ClientID}) {
			return nil, false, false, fmt.Errorf("signed userinfo for issuer %q and audience %q; want %q and our client id", clip(cl.iss), clipAll(cl.aud), c.cfg.Issuer)
		}
		claims = cl.all
	} else if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
		return nil, false, false, errors.New("userinfo answer is not a JSON object")
	}
	if sub, _ := claims["sub"].(string); sub != subject {
		return nil, false, false, fmt.Errorf("userinfo is about subject %q, not the ID token's", clip(sub))
	}
	groups, found = groupsAt(claims, c.groups)
	return groups, found, true, nil
}

// groupsFromUserinfo fills r's groups from userinfo at a login or refresh
// whose ID token named none: replaced by what userinfo answers (none, if
// the answer has none either); kept as they are if it cannot be asked. When
// onlyIfFound, an answer without any group path keeps them too (a refresh
// without a new ID token keeps the login's groups). Failures are logged,
// never returned: fewer groups never grant more, and a refresh must not be
// lost after the provider rotated the refresh token.
func (c *Client) groupsFromUserinfo(ctx context.Context, d *discovered, r *Result, onlyIfFound bool) {
	groups, found, answered, err := c.userinfoGroups(ctx, d, r.AccessToken, r.Identity.Subject)
	switch {
	case err != nil:
		c.log.Warn("oidcclient: groups from the userinfo endpoint", "user", r.Identity.Subject, "err", err)
	case answered && (found || !onlyIfFound):
		r.Identity.Groups = groups
	}
}
