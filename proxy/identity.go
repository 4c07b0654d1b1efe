package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// principal is who a request speaks for: a browser session or a verified
// bearer token, in the one shape token minting needs.
type principal struct {
	sess     *sessionstore.Session // read-only: it may be shared with the store
	sid      string                // the minted sid claim; "" for bearer tokens
	cacheKey string                // minted-token cache key, without the route
	clientID string
	bearer   bool
}

// authenticate finds the request's principal. A bearer token, when bearer
// tokens are accepted, decides alone: valid or errInvalidBearer, never a
// fallback to the cookie. errNoSession means sign in; any other error
// means the store or the provider could not answer.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	rs := stateOf(r)
	if s.cfg.Login.Bearer != nil && rs.bearerPresent {
		return s.bearerPrincipal(r.Context(), rs.bearer)
	}
	sess, t, err := s.session(r)
	if err != nil {
		return nil, err
	}
	sid := t.SID()
	// The session's version is part of the key: after a refresh changes
	// groups or claims, every replica mints anew instead of serving the
	// old token for the rest of its cache life.
	key := sid + "\x00" + strconv.FormatUint(sess.Version, 10)
	return &principal{sess: sess, sid: sid, cacheKey: key, clientID: s.cfg.Login.ClientID}, nil
}

// identify mints the token for p on route rt and returns what the upstream
// (or the ingress) receives.
func (s *Server) identify(r *http.Request, rt *Route, p *principal) (*forward, error) {
	sess := p.sess
	groups := filterGroups(sess.Groups, rt.Groups)
	id := &tokenmint.Identity{
		Subject:           sess.Subject,
		ClientID:          p.clientID,
		Email:             sess.Email,
		EmailVerified:     sess.EmailVerified,
		Name:              sess.Name,
		PreferredUsername: sess.PreferredUsername,
		Groups:            groups,
		SessionID:         p.sid,
		AuthTime:          sess.AuthTime,
	}
	if len(rt.Claims) > 0 {
		id.Extra = make(map[string]any, len(rt.Claims))
		for to, from := range rt.Claims {
			if v, ok := sess.Claims[from]; ok {
				id.Extra[to] = v
			}
		}
	}
	// Cached per principal and route: routes differ in group filters and
	// claim mappings even when they share an audience.
	ctx, end := s.span(r.Context(), "token.mint")
	tok, err := s.cfg.Token.Minter.Mint(ctx, p.cacheKey+"\x00"+rt.Name, rt.Audience, id)
	end(err)
	if err != nil {
		return nil, err
	}
	return &forward{
		authenticated:     true,
		token:             tok.Raw,
		user:              sess.Subject,
		email:             sess.Email,
		groups:            strings.Join(groups, ","),
		preferredUsername: sess.PreferredUsername,
	}, nil
}
