package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// This file is the sign-in for many hosts (docs/multi-host.md). public_url
// is the sign-in host. A login that starts on another host the
// configuration names (redirect.allowed_domains) goes there and back:
//
//  1. host B's /start sets a nonce cookie on B and sends the browser to the
//     sign-in host's /start with rd (on B) and the nonce's hash (hn);
//  2. the sign-in host logs the browser in (or finds it signed in) and
//     hands B a one-time code: a redirect to B's /handoff;
//  3. B's /handoff redeems the code server-side, once, checks it was made
//     for B and for the browser holding the nonce, and sets B's own
//     host-only cookie for the same server-side session.
//
// Every host's cookie is a ticket to one session: sign-out or revocation on
// any host ends them all. The nonce binds a code to the browser that asked
// for it, so an attacker cannot sign a victim into the attacker's account
// on B (login CSRF) with a code of their own.

const (
	// handoffTTL is how long a code can be redeemed: one redirect.
	handoffTTL = time.Minute
	// handoffNonceTTL is how long host B waits for the sign-in host.
	handoffNonceTTL = flowTTL
)

// handoff is what a code stands for, sealed in the store under a key only
// the code derives: the store never holds a usable ticket.
type handoff struct {
	ID      []byte `json:"i"`
	Key     []byte `json:"k"`
	Host    string `json:"h"`  // the host that may redeem it
	Nonce   string `json:"n"`  // hn: the hash of B's nonce cookie
	Expires int64  `json:"e"`  // unix seconds
	Target  string `json:"rd"` // where B sends the browser afterwards (a path)
}

// otherHost reports whether hostport (a Host header, or a URL's host) is a
// host other than the sign-in host that the configuration lets Gatehouse
// send browsers to, and so may be handed a session.
func (s *Server) otherHost(hostport string) bool {
	if h := hostOnly(hostport); h == "" || h == s.publicHost {
		return false
	}
	_, err := s.cfg.Login.Redirects.Check(s.cfg.PublicURL.Scheme + "://" + strings.ToLower(hostport) + "/")
	return err == nil
}

func (s *Server) handoffCookieName() string {
	if s.cfg.Cookie.Secure {
		return "__Host-" + s.cfg.Cookie.Name + "-handoff"
	}
	return s.cfg.Cookie.Name + "-handoff"
}

// startElsewhere is /start on host B: remember this browser with a nonce,
// then sign in at the sign-in host.
func (s *Server) startElsewhere(w http.ResponseWriter, r *http.Request, rd string) {
	target := rd
	if strings.HasPrefix(rd, "/") {
		target = s.cfg.PublicURL.Scheme + "://" + r.Host + rd
	}
	if _, err := s.cfg.Login.Redirects.Check(target); err != nil {
		target = s.cfg.PublicURL.Scheme + "://" + r.Host + "/"
	}
	nonce := randomString(32)
	http.SetCookie(w, &http.Cookie{
		Name: s.handoffCookieName(), Value: nonce, Path: "/", MaxAge: int(handoffNonceTTL / time.Second),
		Secure: s.cfg.Cookie.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	start := strings.TrimSuffix(s.cfg.PublicURL.String(), "/") + s.prefix + "/start?rd=" +
		url.QueryEscape(target) + "&hn=" + nonceHash(nonce)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, start, http.StatusFound)
}

func nonceHash(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// rdHost returns the host of an absolute rd on another host, "" otherwise.
func (s *Server) rdHost(rd string) string {
	if strings.HasPrefix(rd, "/") {
		return ""
	}
	u, err := url.Parse(rd)
	if err != nil {
		return ""
	}
	if s.otherHost(u.Host) {
		return hostOnly(u.Host)
	}
	return ""
}

// handOff sends the browser to host's /handoff with a fresh one-time code
// for the session t. rd is an absolute URL on host; hn the browser's nonce hash.
func (s *Server) handOff(w http.ResponseWriter, r *http.Request, t sessionstore.Ticket, rd, hn string) error {
	u, err := url.Parse(rd)
	if err != nil {
		return err
	}
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	h := handoff{ID: t.ID[:], Key: t.Key[:], Host: hostOnly(u.Host), Nonce: hn,
		Expires: s.now().Add(handoffTTL).Unix(), Target: target}
	plain, err := json.Marshal(h)
	if err != nil {
		return err
	}
	code := randomString(32)
	sealed, err := sealHandoff(code, plain)
	if err != nil {
		return err
	}
	if err := s.cfg.Session.Store.PutOnce(r.Context(), code, sealed, handoffTTL); err != nil {
		return err
	}
	next := u.Scheme + "://" + u.Host + s.prefix + "/handoff?code=" + code
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusFound)
	return nil
}

// handleHandoff is /handoff on host B: redeem a code for B's own cookie.
func (s *Server) handleHandoff(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	refuse := func(why string) {
		s.log.Info("multi-host sign-in: code refused", "request_id", requestID(r), "host", r.Host, "why", why)
		s.page(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in link is no longer valid: it expired, was already used, or was meant for another site or browser.", s.prefix+"/start")
	}
	code := r.URL.Query().Get("code")
	if len(code) != 43 { // randomString(32)
		refuse("malformed")
		return
	}
	sealed, err := s.cfg.Session.Store.TakeOnce(r.Context(), code)
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		refuse("unknown, used or expired")
		return
	case err != nil:
		s.log.Error("multi-host sign-in: reading the code", "request_id", requestID(r), "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "Sign-in could not be completed; try again shortly.")
		return
	}
	var h handoff
	plain, err := openHandoff(code, sealed)
	if err != nil || json.Unmarshal(plain, &h) != nil || len(h.ID) != 32 || len(h.Key) != 32 {
		refuse("undecodable")
		return
	}
	if h.Host != hostOnly(r.Host) {
		refuse("made for another host")
		return
	}
	if s.now().Unix() >= h.Expires {
		refuse("expired")
		return
	}
	nonce, err := r.Cookie(s.handoffCookieName())
	if err != nil || subtle.ConstantTimeCompare([]byte(nonceHash(nonce.Value)), []byte(h.Nonce)) != 1 {
		refuse("another browser's code")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.handoffCookieName(), Value: "", Path: "/", MaxAge: -1,
		Secure: s.cfg.Cookie.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	var t sessionstore.Ticket
	copy(t.ID[:], h.ID)
	copy(t.Key[:], h.Key)
	if _, err := s.cfg.Session.Store.View(r.Context(), t); err != nil {
		refuse("session ended")
		return
	}
	// This host's own earlier session, if any, ends: one browser, one session.
	if old, ok := s.ticket(r); ok && old != t {
		_ = s.storeDelete(r.Context(), old)
	}
	value, err := s.cfg.Cookie.Codec.EncodeTicket(s.cookieName, t)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Internal error.")
		return
	}
	http.SetCookie(w, s.sessionCookie(value))
	rd, err := s.cfg.Login.Redirects.Check(h.Target)
	if err != nil || !strings.HasPrefix(rd, "/") {
		rd = "/"
	}
	s.log.Info("multi-host sign-in", "request_id", requestID(r), "host", h.Host, "sid", t.SID())
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, rd, http.StatusFound)
}

// sealHandoff encrypts a code's content under a key derived from the code.
func sealHandoff(code string, plain []byte) ([]byte, error) {
	gcm, err := handoffAEAD(code)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

func openHandoff(code string, sealed []byte) ([]byte, error) {
	gcm, err := handoffAEAD(code)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("proxy: short handoff")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
}

func handoffAEAD(code string) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("gatehouse-handoff\x00" + code))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
