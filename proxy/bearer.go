package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// BearerVerifier verifies the identity provider's access tokens that native
// and API clients present (oidcclient.Client). Safe for concurrent use.
type BearerVerifier interface {
	VerifyAccessToken(ctx context.Context, raw string) (*oidcclient.Bearer, error)
}

// errInvalidBearer: a bearer token was presented and is not acceptable. It
// is answered with 401 invalid_token, never with a cookie or a login.
var errInvalidBearer = errors.New("invalid bearer token")

// principal is who a request speaks for: a browser session or a verified
// bearer token, in the one shape token minting needs.
type principal struct {
	sess     *sessionstore.Session
	sid      string // the minted sid claim; "" for bearer tokens
	cacheKey string // minted-token cache key
	clientID string
	bearer   bool
}

// bearerToken reads "Authorization: Bearer <token>" (scheme case-insensitive).
// present reports whether any Authorization header used the Bearer scheme;
// several Authorization headers make the token unusable.
func bearerToken(h http.Header) (token string, present bool) {
	vals := h.Values("Authorization")
	for _, v := range vals {
		scheme, tok, _ := strings.Cut(v, " ")
		if strings.EqualFold(scheme, "bearer") {
			if len(vals) != 1 {
				return "", true
			}
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}

// authenticate finds the request's principal. A bearer token, when bearer
// tokens are accepted, decides alone: valid or errInvalidBearer.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	rs, _ := r.Context().Value(reqStateKey{}).(*reqState)
	if s.cfg.Bearer != nil && rs != nil && rs.bearerPresent {
		return s.bearerPrincipal(r.Context(), rs.bearer)
	}
	sess, t, err := s.session(r)
	if err != nil {
		return nil, err
	}
	sid := t.SID()
	return &principal{sess: sess, sid: sid, cacheKey: sid, clientID: s.cfg.ClientID}, nil
}

func (s *Server) bearerPrincipal(ctx context.Context, raw string) (*principal, error) {
	if raw == "" || len(raw) > 16384 {
		return nil, errInvalidBearer
	}
	sum := sha256.Sum256([]byte(raw))
	key := "bt:" + base64.RawURLEncoding.EncodeToString(sum[:18])
	now := s.now()
	if p := s.bearers.get(key, now); p != nil {
		return p, nil
	}
	b, err := s.cfg.Bearer.VerifyAccessToken(ctx, raw)
	if err != nil {
		if errors.Is(err, oidcclient.ErrInvalidToken) {
			s.log.Info("bearer token refused", "err", err)
			return nil, errInvalidBearer
		}
		return nil, err // provider not discovered yet, keys unreachable: 503
	}
	id := b.Identity
	p := &principal{
		sess: &sessionstore.Session{
			Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name,
			PreferredUsername: id.PreferredUsername, Groups: id.Groups, Claims: id.Claims, AuthTime: id.AuthTime,
		},
		cacheKey: key,
		clientID: b.ClientID,
		bearer:   true,
	}
	s.bearers.put(key, p, b.Expiry)
	return p, nil
}

// invalidBearer answers a refused bearer token (RFC 6750 §3).
func invalidBearer(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
	writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The bearer token is invalid, expired, or not meant for this service.")
}

// bearerCache remembers verified bearer tokens until they expire (at most
// bearerCacheTTL), so a client reusing its token is not verified again on
// every request. Bounded: when full it starts over.
type bearerCache struct {
	mu sync.Mutex
	m  map[string]bearerEntry
}

type bearerEntry struct {
	p   *principal
	exp time.Time
}

const (
	bearerCacheTTL = time.Minute
	bearerCacheMax = 10000
)

func (c *bearerCache) get(key string, now time.Time) *principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.exp) {
		return nil
	}
	return e.p
}

func (c *bearerCache) put(key string, p *principal, tokenExp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= bearerCacheMax {
		c.m = make(map[string]bearerEntry)
	}
	exp := time.Now().Add(bearerCacheTTL)
	if !tokenExp.IsZero() && tokenExp.Before(exp) {
		exp = tokenExp
	}
	c.m[key] = bearerEntry{p, exp}
}
