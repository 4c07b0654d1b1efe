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

// errInvalidBearer: a bearer token was presented and is not acceptable. It
// is answered with 401 invalid_token, never with a cookie or a login.
var errInvalidBearer = errors.New("invalid bearer token")

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
	vctx, end := s.span(ctx, "provider.verify_access_token")
	b, err := s.cfg.Login.Bearer.VerifyAccessToken(vctx, raw)
	end(err)
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
