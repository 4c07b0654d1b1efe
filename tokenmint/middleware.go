package tokenmint

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// claimsKey is the request-context key of verified Claims.
type claimsKey struct{}

// Response bodies of Middleware. They say nothing about why a token failed: the
// reason is for the server's logs, not for whoever sent the token.
const (
	bodyInvalidToken = `{"error":"invalid_token","error_description":"The access token is missing, malformed, expired or not meant for this service."}` + "\n"
	bodyUnavailable  = `{"error":"temporarily_unavailable","error_description":"The keys that verify access tokens cannot be fetched right now."}` + "\n"
)

// Middleware verifies the request's `Authorization: Bearer` token and calls next with
// its Claims in the request context (see ClaimsFromContext). A request without a
// valid token gets 401 with `WWW-Authenticate: Bearer error="invalid_token"` (just
// `Bearer` when it sent no token at all, as RFC 6750 section 3.1 asks) and a small
// JSON body; when the JWKS cannot be fetched it gets 503 instead.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, present := bearerToken(r.Header)
		if raw == "" {
			challenge := `Bearer`
			if present {
				challenge = `Bearer error="invalid_token"`
			}
			writeAuthError(w, http.StatusUnauthorized, challenge, bodyInvalidToken)
			return
		}
		claims, err := v.Verify(r.Context(), raw)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		case errors.Is(err, ErrJWKSUnavailable):
			writeAuthError(w, http.StatusServiceUnavailable, "", bodyUnavailable)
		default:
			writeAuthError(w, http.StatusUnauthorized, `Bearer error="invalid_token"`, bodyInvalidToken)
		}
	})
}

// bearerToken returns the token of the request's single Authorization header with the
// Bearer scheme (case-insensitive, RFC 7235). present reports whether any
// Authorization header was sent, so a malformed one is told apart from none.
func bearerToken(h http.Header) (token string, present bool) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return "", false
	}
	if len(values) > 1 {
		return "", true
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", true
	}
	return token, true
}

func writeAuthError(w http.ResponseWriter, status int, challenge, body string) {
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// ClaimsFromContext returns the Claims that Middleware verified for this request.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
