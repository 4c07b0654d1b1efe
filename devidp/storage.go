package devidp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	// authRequestLifetime is how long a user has to finish logging in.
	authRequestLifetime = 10 * time.Minute
	// codeLifetime bounds an authorization code (RFC 6749 4.1.2: short).
	codeLifetime = time.Minute
	// sweepEvery spaces out the pruning of expired entries.
	sweepEvery = 30 * time.Second
	// maxPending bounds the auth requests and device grants anyone can
	// create without credentials, so a loop against /authorize cannot
	// exhaust memory.
	maxPending = 10000
)

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
	_ op.DeviceAuthorizationStorage     = (*storage)(nil)
	_ op.AuthRequest                    = (*authRequest)(nil)
	_ op.RefreshTokenRequest            = (*refreshTokenRequest)(nil)
	_ op.Client                         = (*client)(nil)
)

var (
	errNotFound        = errors.New("devidp: not found or expired")
	errAlreadyComplete = errors.New("devidp: sign-in already completed by another user")
)

// account is a User with the derived data the provider needs.
type account struct {
	User
	passwordHash [32]byte
}

// storage is the in-memory op.Storage. Users and clients are fixed at New;
// everything else is guarded by mu. Values handed to the op package are
// copies, because it reads them after the lock is released.
type storage struct {
	key        *signingKey
	log        *slog.Logger
	accessTTL  time.Duration
	idTTL      time.Duration
	refreshTTL time.Duration
	users      map[string]*account // by ID
	usernames  map[string]*account // by Username
	clients    map[string]*client
	// sessionsEnded is told, outside the lock, which sessions an
	// end_session request ended, to send back-channel logout tokens.
	sessionsEnded func(context.Context, []endedSession) error

	mu            sync.Mutex
	lastSweep     time.Time
	authRequests  map[string]*authRequest
	codes         map[string]authCode
	accessTokens  map[string]*accessToken
	refreshTokens map[string]*refreshToken
	retired       map[string]retiredToken // rotated-out refresh tokens
	sessions      map[string]*session
	deviceGrants  map[string]*deviceGrant // by device code
	userCodes     map[string]string       // user code -> device code
}

type authCode struct {
	requestID string
	expires   time.Time
}

type accessToken struct {
	id, clientID, userID, sid string
	scopes                    []string
	expires                   time.Time
}

type refreshToken struct {
	token         string
	grantID       string // shared by every rotation of one grant
	clientID      string
	userID        string
	sid           string
	scopes        []string
	authTime      time.Time
	amr           []string
	expires       time.Time
	accessTokenID string
}

type retiredToken struct {
	grantID string
	expires time.Time
}

// session is one login: what the sid claim names.
type session struct {
	sid, userID, clientID string
	lastUsed              time.Time
}

// endedSession is a session (or a sid-less device grant) that was ended and
// whose client may want a back-channel logout token.
type endedSession struct {
	sid, userID, clientID string
}

type deviceGrant struct {
	deviceCode, userCode string
	state                op.DeviceAuthorizationState
}

func newStorage(cfg Config, key *signingKey, logger *slog.Logger) *storage {
	s := &storage{
		key:           key,
		log:           logger,
		accessTTL:     orDefault(cfg.AccessTokenLifetime, DefaultAccessTokenLifetime),
		idTTL:         orDefault(cfg.IDTokenLifetime, DefaultIDTokenLifetime),
		refreshTTL:    orDefault(cfg.RefreshTokenLifetime, DefaultRefreshTokenLifetime),
		users:         make(map[string]*account, len(cfg.Users)),
		usernames:     make(map[string]*account, len(cfg.Users)),
		clients:       make(map[string]*client, len(cfg.Clients)),
		authRequests:  make(map[string]*authRequest),
		codes:         make(map[string]authCode),
		accessTokens:  make(map[string]*accessToken),
		refreshTokens: make(map[string]*refreshToken),
		retired:       make(map[string]retiredToken),
		sessions:      make(map[string]*session),
		deviceGrants:  make(map[string]*deviceGrant),
		userCodes:     make(map[string]string),
	}
	for _, u := range cfg.Users {
		a := &account{User: u, passwordHash: sha256.Sum256([]byte(u.Password))}
		if a.ID == "" {
			a.ID = a.Username
		}
		if a.Name == "" {
			a.Name = strings.TrimSpace(a.GivenName + " " + a.FamilyName)
		}
		if a.PreferredUsername == "" {
			a.PreferredUsername = a.Username
		}
		// Never nil, so the claim is [] rather than null for a user without groups.
		a.Groups = append(make([]string, 0, len(u.Groups)), u.Groups...)
		s.users[a.ID] = a
		s.usernames[a.Username] = a
	}
	for _, c := range cfg.Clients {
		s.clients[c.ID] = &client{
			id:                c.ID,
			secretHash:        sha256.Sum256([]byte(c.Secret)),
			public:            c.Secret == "",
			redirectURIs:      slices.Clone(c.RedirectURIs),
			postLogoutURIs:    slices.Clone(c.PostLogoutRedirectURIs),
			backchannelLogout: c.BackchannelLogoutURI,
			idTokenLifetime:   s.idTTL,
		}
	}
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// randomToken returns 256 random bits, base64url encoded.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// dummyHash is compared against when a username is unknown, so a wrong
// username costs the same as a wrong password.
var dummyHash = sha256.Sum256([]byte("devidp: no such user"))

// authenticate checks a username and password in constant time.
func (s *storage) authenticate(username, password string) (*account, bool) {
	a := s.usernames[username]
	want := dummyHash
	if a != nil {
		want = a.passwordHash
	}
	got := sha256.Sum256([]byte(password))
	ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return a, ok && a != nil
}

// sweepLocked drops expired entries, at most every sweepEvery.
func (s *storage) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for id, ar := range s.authRequests {
		if now.Sub(ar.created) > authRequestLifetime {
			delete(s.authRequests, id)
		}
	}
	for c, ac := range s.codes {
		if now.After(ac.expires) {
			delete(s.codes, c)
		}
	}
	for id, at := range s.accessTokens {
		if now.After(at.expires) {
			delete(s.accessTokens, id)
		}
	}
	for t, rt := range s.refreshTokens {
		if now.After(rt.expires) {
			delete(s.refreshTokens, t)
		}
	}
	for t, r := range s.retired {
		if now.After(r.expires) {
			delete(s.retired, t)
		}
	}
	for sid, ses := range s.sessions {
		if now.Sub(ses.lastUsed) > s.refreshTTL+s.idTTL {
			delete(s.sessions, sid)
		}
	}
	for dc, g := range s.deviceGrants {
		if now.After(g.state.Expires) {
			delete(s.deviceGrants, dc)
			delete(s.userCodes, g.userCode)
		}
	}
}

// ---- clients ----

// client is the op.Client view of a Client.
type client struct {
	id                string
	secretHash        [32]byte
	public            bool
	redirectURIs      []string
	postLogoutURIs    []string
	backchannelLogout string
	idTokenLifetime   time.Duration
}

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.postLogoutURIs }

// ApplicationType makes a public client native, which is what lets its
// loopback redirect URIs use any port and makes the op package refuse a
// secret from it.
func (c *client) ApplicationType() op.ApplicationType {
	if c.public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is basic for confidential clients; the op package accepts the
// secret from the form (client_secret_post) for them as well.
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}

func (c *client) LoginURL(id string) string           { return loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return c.idTokenLifetime }
func (c *client) DevMode() bool                       { return false }
func (c *client) ClockSkew() time.Duration            { return 0 }
func (c *client) IsScopeAllowed(scope string) bool    { return scope == ScopeGroups }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

// IDTokenUserinfoClaimsAssertion puts the profile and email claims in the ID
// token even when an access token is issued too, which is what relying
// parties such as Gatehouse read them from.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	c, ok := s.clients[clientID]
	if !ok {
		return nil, fmt.Errorf("devidp: unknown client %q", clientID)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, secret string) error {
	c, ok := s.clients[clientID]
	if !ok {
		// Same work as a known client, so timing does not reveal client ids.
		h := sha256.Sum256([]byte(secret))
		subtle.ConstantTimeCompare(h[:], dummyHash[:])
		return errors.New("devidp: invalid client credentials")
	}
	h := sha256.Sum256([]byte(secret))
	if c.public || subtle.ConstantTimeCompare(h[:], c.secretHash[:]) != 1 {
		return errors.New("devidp: invalid client credentials")
	}
	return nil
}

// ---- authorization requests ----

// authRequest implements op.AuthRequest. The storage keeps the original;
// the op package only ever gets copies.
type authRequest struct {
	id           string
	created      time.Time
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	loginHint    string

	done     bool
	userID   string
	authTime time.Time
	sid      string
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }
func (a *authRequest) sessionID() string                     { return a.sid }

func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// LogValue leaves out the id, which works as a bearer capability for the
// callback, and the state and nonce, which belong to the client.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", a.clientID),
		slog.String("redirect_uri", a.redirectURI),
		slog.Any("scopes", a.scopes),
		slog.String("response_type", string(a.responseType)),
	)
}

func (a *authRequest) copy() *authRequest {
	c := *a
	return &c
}

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	// No single sign-on session exists to reuse, so prompt=none cannot succeed.
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	c, ok := s.clients[req.ClientID]
	if !ok {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown client")
	}
	if c.public && req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with code_challenge_method S256) is required for public clients")
	}
	var challenge *oidc.CodeChallenge
	if req.CodeChallenge != "" {
		// RFC 9700 2.1.1: plain gives no protection against a leaked request.
		if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
			return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
		}
		challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	now := time.Now()
	ar := &authRequest{
		id:           randomToken(),
		created:      now,
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone(req.Scopes),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		challenge:    challenge,
		loginHint:    req.LoginHint,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.authRequests) >= maxPending {
		return nil, oidc.ErrServerError().WithDescription("too many logins in progress")
	}
	s.authRequests[ar.id] = ar
	return ar.copy(), nil
}

// liveRequestLocked returns the auth request if it exists and has not expired.
func (s *storage) liveRequestLocked(id string, now time.Time) (*authRequest, bool) {
	ar, ok := s.authRequests[id]
	if !ok || now.Sub(ar.created) > authRequestLifetime {
		return nil, false
	}
	return ar, true
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.liveRequestLocked(id, time.Now())
	if !ok {
		return nil, errNotFound
	}
	return ar.copy(), nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	ac, ok := s.codes[code]
	if !ok || now.After(ac.expires) {
		return nil, errNotFound
	}
	ar, ok := s.liveRequestLocked(ac.requestID, now)
	if !ok || !ar.done {
		return nil, errNotFound
	}
	return ar.copy(), nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return errNotFound
	}
	s.codes[code] = authCode{requestID: id, expires: time.Now().Add(codeLifetime)}
	return nil
}

// DeleteAuthRequest is called once the code has been exchanged; every code
// issued for the request dies with it, so a code works once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, ac := range s.codes {
		if ac.requestID == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// pendingLogin describes a live auth request to the login page.
type pendingLogin struct {
	clientID, loginHint string
}

func (s *storage) pendingLogin(id string) (pendingLogin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.liveRequestLocked(id, time.Now())
	if !ok {
		return pendingLogin{}, false
	}
	return pendingLogin{clientID: ar.clientID, loginHint: ar.loginHint}, true
}

// completeLogin records that userID signed in for the auth request and
// opens a session. Completing it again for the same user is harmless (a
// double-clicked submit); another user is refused.
func (s *storage) completeLogin(id, userID string) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.liveRequestLocked(id, now)
	if !ok {
		return errNotFound
	}
	if ar.done {
		if ar.userID != userID {
			return errAlreadyComplete
		}
		return nil
	}
	ar.done = true
	ar.userID = userID
	ar.authTime = now
	ar.sid = randomToken()
	s.sessions[ar.sid] = &session{sid: ar.sid, userID: userID, clientID: ar.clientID, lastUsed: now}
	return nil
}

// ---- tokens ----

// grantRequest is what every token request the provider supports
// (*authRequest, *refreshTokenRequest, *op.DeviceAuthorizationState) offers.
type grantRequest interface {
	GetClientID() string
	GetSubject() string
	GetScopes() []string
	GetAuthTime() time.Time
	GetAMR() []string
}

// sessionRequest is implemented by requests that belong to a session.
type sessionRequest interface{ sessionID() string }

func sidOf(r any) string {
	if sr, ok := r.(sessionRequest); ok {
		return sr.sessionID()
	}
	return ""
}

func (s *storage) newAccessTokenLocked(g grantRequest, sid string, now time.Time) *accessToken {
	at := &accessToken{
		id:       randomToken(),
		clientID: g.GetClientID(),
		userID:   g.GetSubject(),
		sid:      sid,
		scopes:   slices.Clone(g.GetScopes()),
		expires:  now.Add(s.accessTTL),
	}
	s.accessTokens[at.id] = at
	return at
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, ok := req.(grantRequest)
	if !ok {
		return "", time.Time{}, fmt.Errorf("devidp: unsupported token request %T", req)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	at := s.newAccessTokenLocked(g, sidOf(req), now)
	return at.id, at.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	g, ok := req.(grantRequest)
	if !ok {
		return "", "", time.Time{}, fmt.Errorf("devidp: unsupported token request %T", req)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)

	var next refreshToken
	if current == "" {
		// A new grant: code or device flow with offline_access.
		next = refreshToken{
			grantID:  randomToken(),
			clientID: g.GetClientID(),
			userID:   g.GetSubject(),
			sid:      sidOf(req),
			scopes:   slices.Clone(g.GetScopes()),
			authTime: g.GetAuthTime(),
			amr:      slices.Clone(g.GetAMR()),
		}
	} else {
		// Rotation. Checked again under the lock: of two concurrent uses of
		// one token only the first gets here with it still live.
		old, err := s.useRefreshTokenLocked(current, now)
		if err != nil {
			return "", "", time.Time{}, err
		}
		delete(s.refreshTokens, current)
		delete(s.accessTokens, old.accessTokenID)
		s.retired[current] = retiredToken{grantID: old.grantID, expires: now.Add(s.refreshTTL)}
		next = *old // keeps the grant's full scope even if this access token asked for less
		if ses, ok := s.sessions[old.sid]; ok {
			ses.lastUsed = now
		}
	}
	at := s.newAccessTokenLocked(g, next.sid, now)
	next.token = randomToken()
	next.expires = now.Add(s.refreshTTL)
	next.accessTokenID = at.id
	s.refreshTokens[next.token] = &next
	return at.id, next.token, at.expires, nil
}

// useRefreshTokenLocked returns the live refresh token. Presenting a token
// that was already rotated out means it leaked or was used twice, so the
// whole grant is revoked (RFC 9700 4.14.2).
func (s *storage) useRefreshTokenLocked(token string, now time.Time) (*refreshToken, error) {
	if r, ok := s.retired[token]; ok {
		for t, rt := range s.refreshTokens {
			if rt.grantID == r.grantID {
				delete(s.refreshTokens, t)
				delete(s.accessTokens, rt.accessTokenID)
			}
		}
		s.log.Warn("devidp: rotated-out refresh token presented again; grant revoked")
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
	}
	rt, ok := s.refreshTokens[token]
	if !ok || now.After(rt.expires) {
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token invalid or expired")
	}
	return rt, nil
}

// refreshTokenRequest implements op.RefreshTokenRequest over a copy of a
// stored refresh token.
type refreshTokenRequest struct {
	rt     refreshToken
	scopes []string
}

func (r *refreshTokenRequest) GetAMR() []string            { return r.rt.amr }
func (r *refreshTokenRequest) GetAudience() []string       { return []string{r.rt.clientID} }
func (r *refreshTokenRequest) GetAuthTime() time.Time      { return r.rt.authTime }
func (r *refreshTokenRequest) GetClientID() string         { return r.rt.clientID }
func (r *refreshTokenRequest) GetScopes() []string         { return r.scopes }
func (r *refreshTokenRequest) GetSubject() string          { return r.rt.userID }
func (r *refreshTokenRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshTokenRequest) sessionID() string           { return r.rt.sid }

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, err := s.useRefreshTokenLocked(token, time.Now())
	if err != nil {
		return nil, err
	}
	return &refreshTokenRequest{rt: *rt, scopes: slices.Clone(rt.scopes)}, nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.userID, rt.token, nil
}

// RevokeToken revokes an access token (by jti) or a refresh token (with the
// access token issued alongside it). Unknown tokens are not an error (RFC
// 7009 2.2); another client's token is.
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.accessTokens[tokenOrID]; ok {
		if at.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.accessTokens, tokenOrID)
		return nil
	}
	if rt, ok := s.refreshTokens[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refreshTokens, tokenOrID)
		delete(s.accessTokens, rt.accessTokenID)
	}
	return nil
}

// ---- sessions and logout ----

// endSessionsLocked forgets the sessions and every token issued under them
// or, for grants without a session, to the same user and client.
func (s *storage) endSessionsLocked(match func(userID, clientID, sid string) bool) []endedSession {
	var ended []endedSession
	seen := make(map[endedSession]bool)
	add := func(e endedSession) {
		if !seen[e] {
			seen[e] = true
			ended = append(ended, e)
		}
	}
	for sid, ses := range s.sessions {
		if match(ses.userID, ses.clientID, sid) {
			delete(s.sessions, sid)
			add(endedSession{sid: sid, userID: ses.userID, clientID: ses.clientID})
		}
	}
	for t, rt := range s.refreshTokens {
		if match(rt.userID, rt.clientID, rt.sid) {
			delete(s.refreshTokens, t)
			add(endedSession{sid: rt.sid, userID: rt.userID, clientID: rt.clientID})
		}
	}
	for id, at := range s.accessTokens {
		if match(at.userID, at.clientID, at.sid) {
			delete(s.accessTokens, id)
		}
	}
	return ended
}

func (s *storage) endUserSessions(username string) ([]endedSession, error) {
	a, ok := s.usernames[username]
	if !ok {
		return nil, fmt.Errorf("devidp: unknown user %q", username)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endSessionsLocked(func(userID, _, _ string) bool { return userID == a.ID }), nil
}

func (s *storage) revokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.accessTokens)
	clear(s.refreshTokens)
	clear(s.retired)
	clear(s.sessions)
}

// TerminateSession is the op package's fallback when the storage cannot
// take the whole request; TerminateSessionFromRequest is used instead.
func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endSessionsLocked(func(u, c, _ string) bool { return u == userID && c == clientID })
	return nil
}

// TerminateSessionFromRequest ends the session the id_token_hint names (its
// sid), or without a sid every session of that user at that client, and
// sends back-channel logout tokens before the browser is redirected. A
// failed delivery is logged, not shown: the user did sign out here.
func (s *storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	var sid string
	if req.IDTokenHintClaims != nil {
		sid = req.IDTokenHintClaims.SessionID
	}
	var ended []endedSession
	if req.UserID != "" {
		s.mu.Lock()
		ended = s.endSessionsLocked(func(userID, clientID, tokenSID string) bool {
			if sid != "" {
				return tokenSID == sid && userID == req.UserID
			}
			return userID == req.UserID && clientID == req.ClientID
		})
		s.mu.Unlock()
	}
	s.log.Info("devidp: end_session", slog.String("client_id", req.ClientID), slog.Int("sessions_ended", len(ended)))
	if len(ended) > 0 && s.sessionsEnded != nil {
		if err := s.sessionsEnded(context.WithoutCancel(ctx), ended); err != nil {
			s.log.Warn("devidp: back-channel logout failed", slog.Any("error", err))
		}
	}
	return req.RedirectURI, nil
}

// ---- claims ----

// userinfo fills ui with the user's claims for the scopes.
func (s *storage) userinfo(ui *oidc.UserInfo, userID string, scopes []string) error {
	a, ok := s.users[userID]
	if !ok {
		return fmt.Errorf("devidp: unknown user %q", userID)
	}
	ui.Subject = a.ID
	if slices.Contains(scopes, oidc.ScopeEmail) {
		ui.Email = a.Email
		ui.EmailVerified = oidc.Bool(a.EmailVerified)
		// The struct field is omitempty; the claim must be there when false too.
		ui.AppendClaims("email_verified", a.EmailVerified)
	}
	if slices.Contains(scopes, oidc.ScopeProfile) {
		ui.Name = a.Name
		ui.GivenName = a.GivenName
		ui.FamilyName = a.FamilyName
		ui.PreferredUsername = a.PreferredUsername
	}
	if wantsGroups(scopes) {
		ui.AppendClaims(ClaimGroups, slices.Clone(a.Groups))
	}
	return nil
}

func wantsGroups(scopes []string) bool {
	return slices.Contains(scopes, ScopeGroups) || slices.Contains(scopes, oidc.ScopeProfile)
}

// SetUserinfoFromScopes is deprecated in the op package, which calls
// SetUserinfoFromRequest after it.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims, with the session's sid.
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.userinfo(ui, req.GetSubject(), scopes); err != nil {
		return err
	}
	if a := s.users[req.GetSubject()]; a != nil && a.GroupsInUserinfoOnly {
		delete(ui.Claims, ClaimGroups)
	}
	if sid := sidOf(req); sid != "" {
		ui.AppendClaims("sid", sid)
	}
	return nil
}

// liveAccessToken returns a copy of the access token record if it is live.
func (s *storage) liveAccessToken(id string) (accessToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.accessTokens[id]
	if !ok || time.Now().After(at.expires) {
		return accessToken{}, false
	}
	return *at, true
}

func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	at, ok := s.liveAccessToken(tokenID)
	if !ok {
		return errors.New("devidp: access token revoked or expired")
	}
	return s.userinfo(ui, at.userID, at.scopes)
}

// SetIntrospectionFromToken answers active only to the client the token was
// issued to, which is its audience.
func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	at, ok := s.liveAccessToken(tokenID)
	if !ok || at.clientID != clientID {
		return errors.New("devidp: token inactive for this client")
	}
	ui := new(oidc.UserInfo)
	if err := s.userinfo(ui, at.userID, at.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Scope = at.scopes
	resp.ClientID = at.clientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(at.expires)
	resp.Audience = oidc.Audience{at.clientID}
	resp.JWTID = at.id
	return nil
}

// GetPrivateClaimsFromRequest adds to JWT access tokens what a resource
// server needs without a userinfo call: scope, the profile and email claims
// for the granted scopes, groups, auth_time and sid. The op package strips
// profile and email from restrictedScopes, so the request's own scopes are
// used.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	claims, err := s.privateClaims(req.GetSubject(), req.GetScopes())
	if err != nil {
		return nil, err
	}
	if g, ok := req.(grantRequest); ok && !g.GetAuthTime().IsZero() {
		claims["auth_time"] = g.GetAuthTime().Unix()
	}
	if sid := sidOf(req); sid != "" {
		claims["sid"] = sid
	}
	return claims, nil
}

// GetPrivateClaimsFromScopes is the op package's fallback for
// GetPrivateClaimsFromRequest.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, scopes []string) (map[string]any, error) {
	return s.privateClaims(userID, scopes)
}

func (s *storage) privateClaims(userID string, scopes []string) (map[string]any, error) {
	ui := new(oidc.UserInfo)
	if err := s.userinfo(ui, userID, scopes); err != nil {
		return nil, err
	}
	claims := map[string]any{"scope": strings.Join(scopes, " ")}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		claims["email"] = ui.Email
		claims["email_verified"] = bool(ui.EmailVerified)
	}
	if slices.Contains(scopes, oidc.ScopeProfile) {
		claims["name"] = ui.Name
		claims["given_name"] = ui.GivenName
		claims["family_name"] = ui.FamilyName
		claims["preferred_username"] = ui.PreferredUsername
	}
	if g, ok := ui.Claims[ClaimGroups]; ok {
		claims[ClaimGroups] = g
	}
	return claims, nil
}

// ---- keys ----

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// GetKeyByIDAndClientID would serve private_key_jwt and the JWT bearer
// grant, which this provider does not offer.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("devidp: JWT client authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("devidp: the JWT bearer grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// ---- device authorization grant (RFC 8628) ----

func (s *storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	if _, ok := s.clients[clientID]; !ok {
		return fmt.Errorf("devidp: unknown client %q", clientID)
	}
	// The op package does not filter device-grant scopes as it does for
	// /authorize, so drop what this provider does not know here.
	scopes = slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool {
		return !slices.Contains([]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess, ScopeGroups}, sc)
	})
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.deviceGrants) >= maxPending {
		return errors.New("devidp: too many device authorizations in progress")
	}
	if _, dup := s.userCodes[userCode]; dup {
		return op.ErrDuplicateUserCode
	}
	s.deviceGrants[deviceCode] = &deviceGrant{
		deviceCode: deviceCode,
		userCode:   userCode,
		state: op.DeviceAuthorizationState{
			ClientID: clientID,
			Audience: []string{clientID},
			Scopes:   scopes,
			Expires:  expires,
		},
	}
	s.userCodes[userCode] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState returns a copy of the grant's state. Once it is
// approved or denied the answer is given once and the device code is spent.
func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.deviceGrants[deviceCode]
	if !ok || g.state.ClientID != clientID {
		return nil, errNotFound
	}
	state := g.state
	state.Scopes = slices.Clone(g.state.Scopes)
	state.Audience = slices.Clone(g.state.Audience)
	if state.Done || state.Denied {
		delete(s.deviceGrants, deviceCode)
		delete(s.userCodes, g.userCode)
	}
	return &state, nil
}

// pendingDevice returns the client of a device grant awaiting its user.
func (s *storage) pendingDevice(userCode string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.deviceGrants[s.userCodes[userCode]]
	if !ok || g.state.Done || g.state.Denied || time.Now().After(g.state.Expires) {
		return "", false
	}
	return g.state.ClientID, true
}

// decideDevice approves (for userID) or denies the device grant.
func (s *storage) decideDevice(userCode, userID string, approve bool) (clientID string, err error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.deviceGrants[s.userCodes[userCode]]
	if !ok || g.state.Done || g.state.Denied || now.After(g.state.Expires) {
		return "", errNotFound
	}
	if !approve {
		g.state.Denied = true
		return g.state.ClientID, nil
	}
	g.state.Done = true
	g.state.Subject = userID
	g.state.AMR = []string{"pwd"}
	g.state.AuthTime = now
	return g.state.ClientID, nil
}
