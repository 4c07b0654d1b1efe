package devidp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// logoutTokenLifetime is short: a logout token is delivered at once.
const logoutTokenLifetime = 2 * time.Minute

// backchannelLogoutEvent is the events member of a logout token.
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutToken returns an OpenID Connect Back-Channel Logout 1.0 token for the
// client, signed with the provider's key: typ logout+jwt, iss, aud = client
// id, iat, exp (two minutes), a fresh jti, the back-channel logout event,
// and sub and sid when not empty (at least one is required). The provider
// sends these itself (see Client.BackchannelLogoutURI); LogoutToken lets
// tests build one to replay or tamper with.
func (p *Provider) LogoutToken(clientID, subject, sid string) (string, error) {
	if clientID == "" {
		return "", errors.New("devidp: logout token: client id required")
	}
	if subject == "" && sid == "" {
		return "", errors.New("devidp: logout token: subject or sid required")
	}
	now := time.Now()
	claims := map[string]any{
		"iss":    p.issuer,
		"aud":    []string{clientID},
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenLifetime).Unix(),
		"jti":    randomToken(),
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}
	if subject != "" {
		claims["sub"] = subject
	}
	if sid != "" {
		claims["sid"] = sid
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: logout token: %w", err)
	}
	signer, err := p.key.signer("logout+jwt")
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: signing logout token: %w", err)
	}
	return jws.CompactSerialize()
}

// deliverLogouts POSTs a logout token for each ended session to its
// client's BackchannelLogoutURI, one after another, and reports failures.
func (p *Provider) deliverLogouts(ctx context.Context, ended []endedSession) error {
	var errs []error
	for _, e := range ended {
		c, ok := p.store.clients[e.clientID]
		if !ok || c.backchannelLogout == "" {
			continue
		}
		if err := p.deliverLogout(ctx, c.backchannelLogout, e); err != nil {
			p.log.Warn("devidp: back-channel logout", slog.String("client_id", e.clientID), slog.Any("error", err))
			errs = append(errs, err)
			continue
		}
		p.log.Info("devidp: back-channel logout delivered", slog.String("client_id", e.clientID), slog.String("sub", e.userID))
	}
	return errors.Join(errs...)
}

func (p *Provider) deliverLogout(ctx context.Context, uri string, e endedSession) error {
	token, err := p.LogoutToken(e.clientID, e.userID, e.sid)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.backchannel.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("devidp: back-channel logout to %s: %w", e.clientID, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.backchannel.Do(req)
	if err != nil {
		return fmt.Errorf("devidp: back-channel logout to %s: %w", e.clientID, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	// Back-Channel Logout 1.0 section 2.8: success is 200 (204 is common too).
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("devidp: back-channel logout to %s: status %d", e.clientID, resp.StatusCode)
	}
	return nil
}
