package devidp

import (
	"bytes"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Paths the provider serves itself, next to the op package's endpoints.
const (
	pathLogin     = "/login"
	pathDevice    = "/device"
	pathLoggedOut = "/logged-out"
)

// Form field names of the login and device pages.
const (
	fieldAuthRequestID = "auth_request_id"
	fieldUsername      = "username"
	fieldPassword      = "password"
	fieldUserCode      = "user_code"
	fieldAction        = "action"
)

const (
	// maxFormBytes bounds a login or device form post.
	maxFormBytes = 8 << 10
	// maxFieldBytes bounds each field; longer input is refused unread.
	maxFieldBytes = 512
)

// loginURL is where the authorization endpoint sends the browser.
func loginURL(authRequestID string) string {
	return pathLogin + "?" + fieldAuthRequestID + "=" + url.QueryEscape(authRequestID)
}

// loginUI serves the login, device and signed-out pages.
type loginUI struct {
	p     *Provider
	hints []hint // nil unless Config.ShowHints
}

type hint struct{ Username, Password string }

func newLoginUI(p *Provider, cfg Config) *loginUI {
	ui := &loginUI{p: p}
	if cfg.ShowHints {
		for _, u := range cfg.Users {
			ui.hints = append(ui.hints, hint{u.Username, u.Password})
		}
	}
	return ui
}

// pageData is what every template sees; fields a page does not use stay empty.
type pageData struct {
	Title         string
	Error         string
	Message       string
	ClientID      string
	AuthRequestID string
	Username      string
	UserCode      string
	Hints         []hint
}

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}} · Gatehouse dev IdP</title>
<style>
  :root { color-scheme: light dark; --accent: #2f6fde; }
  body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         min-height: 100vh; display: grid; place-items: center; background: Canvas; color: CanvasText; }
  main { width: min(22rem, 100% - 2rem); padding: 2rem; border: 1px solid #8884; border-radius: 12px; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  .sub { margin: 0 0 1.5rem; opacity: .75; }
  label { display: block; margin: 0 0 1rem; font-weight: 600; }
  input { display: block; box-sizing: border-box; width: 100%; margin-top: .3rem; padding: .55rem .7rem;
          font: inherit; border: 1px solid #8888; border-radius: 8px; background: Field; color: FieldText; }
  button { width: 100%; padding: .6rem; font: inherit; font-weight: 600; border: 0; border-radius: 8px;
           background: var(--accent); color: #fff; cursor: pointer; }
  button.secondary { margin-top: .5rem; background: transparent; color: inherit; border: 1px solid #8888; }
  .error { padding: .6rem .8rem; margin: 0 0 1rem; border-radius: 8px; background: #d332; border: 1px solid #d338; }
  .hint { margin: 1.5rem 0 0; font-size: .875rem; opacity: .75; }
  code { font-size: .95em; }
</style>
</head>
<body>
<main>
{{end}}

{{define "foot"}}</main>
</body>
</html>
{{end}}

{{define "error"}}{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}{{end}}

{{define "hints"}}{{if .Hints}}<p class="hint">Demo accounts (username / password):
{{range $i, $h := .Hints}}{{if $i}}, {{end}}<code>{{$h.Username}}</code> / <code>{{$h.Password}}</code>{{end}}</p>{{end}}{{end}}

{{define "login"}}{{template "head" .}}
<h1>Sign in</h1>
<p class="sub">to continue to <strong>{{.ClientID}}</strong></p>
{{template "error" .}}
<form method="post" action="/login">
<input type="hidden" name="auth_request_id" value="{{.AuthRequestID}}">
<label>Username
<input name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="256" required autofocus>
</label>
<label>Password
<input type="password" name="password" autocomplete="current-password" maxlength="256" required>
</label>
<button type="submit">Sign in</button>
</form>
{{template "hints" .}}
{{template "foot" .}}{{end}}

{{define "device"}}{{template "head" .}}
<h1>Connect a device</h1>
<p class="sub">Enter the code shown on your device and sign in to approve it.</p>
{{template "error" .}}
<form method="post" action="/device">
<label>Code
<input name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="32" required>
</label>
<label>Username
<input name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="256" required>
</label>
<label>Password
<input type="password" name="password" autocomplete="current-password" maxlength="256" required>
</label>
<button type="submit" name="action" value="allow">Approve</button>
<button type="submit" name="action" value="deny" class="secondary">Deny</button>
</form>
{{template "hints" .}}
{{template "foot" .}}{{end}}

{{define "message"}}{{template "head" .}}
<h1>{{.Title}}</h1>
{{template "error" .}}
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{template "foot" .}}{{end}}
`))

// render writes a page with headers that keep it out of caches and frames.
func (ui *loginUI) render(w http.ResponseWriter, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		ui.p.log.Error("devidp: rendering page", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// No form-action: the login's redirect chain ends at the client's
	// redirect_uri, which browsers would check against it.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (ui *loginUI) message(w http.ResponseWriter, status int, title, errMsg, msg string) {
	ui.render(w, status, "message", pageData{Title: title, Error: errMsg, Message: msg})
}

// parseForm reads a bounded form post and returns its fields, or false
// after answering the request itself.
func (ui *loginUI) parseForm(w http.ResponseWriter, r *http.Request, fields ...string) (map[string]string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		ui.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.", "")
		return nil, false
	}
	values := make(map[string]string, len(fields))
	for _, f := range fields {
		v := r.PostForm.Get(f)
		if len(v) > maxFieldBytes || !utf8.ValidString(v) {
			ui.message(w, http.StatusBadRequest, "Bad request", "A form field is too long or not valid text.", "")
			return nil, false
		}
		values[f] = v
	}
	return values, true
}

func methodNotAllowed(w http.ResponseWriter) {
	w.Header().Set("Allow", "GET, HEAD, POST")
	http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
}

const staleLogin = "This sign-in request is unknown or has expired. Go back to the application and start again."

// serveLogin shows the login form (GET) and checks its submission (POST).
func (ui *loginUI) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		id := r.URL.Query().Get(fieldAuthRequestID)
		pending, ok := ui.p.store.pendingLogin(id)
		if !ok {
			ui.message(w, http.StatusBadRequest, "Sign-in expired", staleLogin, "")
			return
		}
		ui.render(w, http.StatusOK, "login", pageData{
			Title: "Sign in", ClientID: pending.clientID, AuthRequestID: id,
			Username: truncate(pending.loginHint, 256), Hints: ui.hints,
		})
	case http.MethodPost:
		ui.submitLogin(w, r)
	default:
		methodNotAllowed(w)
	}
}

func (ui *loginUI) submitLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := ui.parseForm(w, r, fieldAuthRequestID, fieldUsername, fieldPassword)
	if !ok {
		return
	}
	id := f[fieldAuthRequestID]
	if id == "" {
		// A client that posts back to the page URL without the hidden field.
		id = r.URL.Query().Get(fieldAuthRequestID)
	}
	pending, ok := ui.p.store.pendingLogin(id)
	if !ok {
		ui.message(w, http.StatusBadRequest, "Sign-in expired", staleLogin, "")
		return
	}
	acct, ok := ui.p.store.authenticate(f[fieldUsername], f[fieldPassword])
	if !ok {
		ui.p.log.Warn("devidp: login failed", slog.String("client_id", pending.clientID), slog.String("username", truncate(f[fieldUsername], 64)))
		ui.render(w, http.StatusOK, "login", pageData{
			Title: "Sign in", ClientID: pending.clientID, AuthRequestID: id,
			Username: f[fieldUsername], Error: "Wrong username or password.", Hints: ui.hints,
		})
		return
	}
	if err := ui.p.store.completeLogin(id, acct.ID); err != nil {
		msg := staleLogin
		if errors.Is(err, errAlreadyComplete) {
			msg = "This sign-in was already completed by another user. Go back to the application and start again."
		}
		ui.message(w, http.StatusBadRequest, "Sign-in failed", msg, "")
		return
	}
	ui.p.log.Info("devidp: login", slog.String("client_id", pending.clientID), slog.String("username", acct.Username))
	// The op package's callback turns the finished request into a code and
	// redirects to the client; 303 makes the browser GET it.
	ctx := op.ContextWithIssuer(r.Context(), ui.p.issuer)
	http.Redirect(w, r, op.AuthCallbackURL(ui.p.op)(ctx, id), http.StatusSeeOther)
}

// serveDevice is the RFC 8628 verification page: enter the user code, sign
// in, approve or deny.
func (ui *loginUI) serveDevice(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ui.render(w, http.StatusOK, "device", pageData{
			Title: "Connect a device", UserCode: truncate(r.URL.Query().Get(fieldUserCode), 32), Hints: ui.hints,
		})
	case http.MethodPost:
		ui.submitDevice(w, r)
	default:
		methodNotAllowed(w)
	}
}

func (ui *loginUI) submitDevice(w http.ResponseWriter, r *http.Request) {
	f, ok := ui.parseForm(w, r, fieldUserCode, fieldUsername, fieldPassword, fieldAction)
	if !ok {
		return
	}
	code := normalizeUserCode(f[fieldUserCode])
	again := func(errMsg string) {
		ui.render(w, http.StatusOK, "device", pageData{
			Title: "Connect a device", UserCode: f[fieldUserCode], Username: f[fieldUsername], Error: errMsg, Hints: ui.hints,
		})
	}
	clientID, ok := ui.p.store.pendingDevice(code)
	if !ok {
		again("That code is unknown or has expired. Check the code on your device.")
		return
	}
	acct, ok := ui.p.store.authenticate(f[fieldUsername], f[fieldPassword])
	if !ok {
		ui.p.log.Warn("devidp: device login failed", slog.String("client_id", clientID), slog.String("username", truncate(f[fieldUsername], 64)))
		again("Wrong username or password.")
		return
	}
	approve := f[fieldAction] != "deny"
	if _, err := ui.p.store.decideDevice(code, acct.ID, approve); err != nil {
		again("That code is unknown or has expired. Check the code on your device.")
		return
	}
	ui.p.log.Info("devidp: device grant decided", slog.String("client_id", clientID), slog.String("username", acct.Username), slog.Bool("approved", approve))
	if !approve {
		ui.message(w, http.StatusOK, "Device denied", "", "The device was not connected. You can close this page.")
		return
	}
	ui.message(w, http.StatusOK, "Device connected", "", "You are signed in on "+clientID+". You can return to your device.")
}

// serveLoggedOut is where end_session lands without a post_logout_redirect_uri.
func (ui *loginUI) serveLoggedOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	ui.message(w, http.StatusOK, "Signed out", "", "You have been signed out.")
}

// normalizeUserCode accepts a user code typed in any case, with or without
// its dash and spaces, and returns the form the op package issued
// (op.UserCodeBase20: XXXX-XXXX).
func normalizeUserCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
	}
	c := b.String()
	if len(c) == 8 {
		return c[:4] + "-" + c[4:]
	}
	return c
}

// truncate shortens s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
