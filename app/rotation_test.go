package app_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// TestSigningKeyRotationUnderLoad rotates the signing key twice, each time
// publish → promote → retire driven by token.signing_key_files and the
// file watcher, while clients keep calling two upstreams that verify every
// token: a Go service with tokenmint.Verifier and the Django example with
// PyJWT. Not one request may fail.
//
// The waits of the cycle are compressed, each to the event it stands for:
//   - publish → promote ("every verifier could have fetched the JWKS"): both
//     verifiers may refetch the JWKS at once for an unknown kid, as they
//     can in production once their refresh interval has passed since their
//     last fetch, which the documented wait guarantees;
//   - promote → retire ("the last token of the old key has expired"): every
//     client has finished two requests begun after the promotion, so no
//     request holds a token minted before it, and tokens minted since carry
//     the new key (the mint cache is dropped at promotion: checked).
func TestSigningKeyRotationUnderLoad(t *testing.T) {
	requireDjango(t)
	goUp := newVerifyingUpstream(t)
	djangoAddr := reserveAddr(t)
	routes := fmt.Sprintf(`  - name: go
    path_prefix: /go/
    upstream: %s
    audience: go
  - name: django
    path_prefix: /api/
    upstream: http://%s
    audience: django
`, goUp.url, djangoAddr)

	keyFile := func(i int) string { return fmt.Sprintf("signing-key-%d.pem", i) }
	g := start(t, func(g *gatehouse) settings {
		path, _ := g.WriteKey(keyFile(1), "ES256")
		return settings{Routes: routes, KeyFiles: []string{path}}
	}, nil)
	goUp.verify(g.URL, "go")
	startDjango(t, djangoAddr, g.URL)

	kidOf := func(i int) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(g.dir, keyFile(i)))
		if err != nil {
			t.Fatal(err)
		}
		k, err := tokenmint.ParseKeyPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		return k.KeyID()
	}

	load := newLoad(t, g, []string{"alice", "bob", "eve"})
	expect := map[int]string{0: kidOf(1)} // stage -> the kid every token must carry
	stage := 0
	step := func(name string, files []int, signer int) {
		t.Helper()
		var paths, want []string
		for _, i := range files {
			paths = append(paths, filepath.Join(g.dir, keyFile(i)))
			want = append(want, kidOf(i))
		}
		load.between() // until the reload has surely applied, either kid is right
		g.WriteConfig(settings{Routes: routes, KeyFiles: paths})
		g.WaitReload(name, changed("token.signing_key_files"))
		if got := jwksKids(t, g.URL); !slices.Equal(got, want) {
			t.Fatalf("%s: the JWKS lists %v; want %v", name, got, want)
		}
		stage++
		expect[stage] = kidOf(signer)
		load.enter(stage)
	}
	load.enter(0)
	for rotation := 1; rotation <= 2; rotation++ {
		oldKey, newKey := rotation, rotation+1
		g.WriteKey(keyFile(newKey), "ES256")
		step(fmt.Sprintf("rotation %d: publish", rotation), []int{oldKey, newKey}, oldKey)
		step(fmt.Sprintf("rotation %d: promote", rotation), []int{newKey, oldKey}, newKey)
		step(fmt.Sprintf("rotation %d: retire", rotation), []int{newKey}, newKey)
	}
	iterations := load.stop()

	for _, f := range load.failures() {
		t.Error(f)
	}
	for _, it := range iterations {
		if it.stage != betweenStages && it.kid != expect[it.stage] {
			t.Errorf("stage %d: a request begun after the reload carried a token of kid %s; want %s", it.stage, it.kid, expect[it.stage])
		}
	}
	t.Logf("%d requests through two rotations, %d failed; Go verifier answered %d, Django %d",
		2*len(iterations), len(load.failures()), goUp.served.Load(), len(iterations))
}

// verifyingUpstream is a Go service that verifies Gatehouse's tokens with
// tokenmint.Verifier and answers with the token's kid.
type verifyingUpstream struct {
	url      string
	verifier atomic.Pointer[tokenmint.Verifier]
	served   atomic.Int64
}

func newVerifyingUpstream(t *testing.T) *verifyingUpstream {
	u := &verifyingUpstream{}
	u.url = httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		v := u.verifier.Load()
		if !ok || v == nil {
			http.Error(w, "no token or no verifier", http.StatusUnauthorized)
			return
		}
		if _, err := v.Verify(r.Context(), raw); err != nil {
			http.Error(w, "refused: "+err.Error(), http.StatusUnauthorized)
			return
		}
		u.served.Add(1)
		fmt.Fprintf(w, "kid=%s", tokenKid(raw))
	}))
	return u
}

// verify makes the upstream verify tokens of issuer for audience, pinned to
// issuer's JWKS. A token with an unknown kid refetches the JWKS at once
// (the compressed wait; see TestSigningKeyRotationUnderLoad).
func (u *verifyingUpstream) verify(issuer, audience string) {
	v, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{
		Issuer: issuer, Audience: audience, JWKSURL: issuer + "/oauth2/jwks.json",
		MinRefreshInterval: time.Nanosecond,
	})
	if err != nil {
		panic(err)
	}
	u.verifier.Store(v)
}

// tokenKid is the kid of a compact JWS's header, "" if it has none.
func tokenKid(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Kid
}

// jwksKids lists the kids Gatehouse's JWKS publishes, in order.
func jwksKids(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/oauth2/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// load is a bounded set of clients, one signed-in user each, calling the Go
// upstream and Django in a loop until stopped.
type load struct {
	t     *testing.T
	g     *gatehouse
	stage atomic.Int64
	// progress receives a worker's number when it has finished two
	// requests begun in the current stage.
	progress chan int
	workers  int
	quit     chan struct{}
	wg       sync.WaitGroup

	mu   sync.Mutex
	done []iteration
	errs []string
}

type iteration struct {
	stage int    // the stage when the iteration began, or betweenStages
	kid   string // the Go upstream's token's kid
}

// betweenStages is the stage while a reload is on its way.
const betweenStages = -1

// between marks the time from a configuration write to its reload.
func (l *load) between() { l.stage.Store(betweenStages) }

func newLoad(t *testing.T, g *gatehouse, users []string) *load {
	l := &load{t: t, g: g, progress: make(chan int, 64), workers: len(users), quit: make(chan struct{})}
	clients := make([]*http.Client, len(users))
	for i, u := range users {
		clients[i] = g.Browser()
		if _, body := g.Login(clients[i], "/go/whoami", u, u+"-pw"); !strings.HasPrefix(body, "kid=") {
			t.Fatalf("%s's login ended with %q; want the Go upstream's answer", u, body)
		}
	}
	for w, c := range clients {
		l.wg.Go(func() { l.run(w, c) })
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) run(w int, c *http.Client) {
	counted := map[int]int{}
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		stage := int(l.stage.Load())
		kid, ok := l.call(c, stage, "/go/whoami", func(body string) (string, bool) { return strings.CutPrefix(body, "kid=") })
		if !ok {
			continue
		}
		if _, ok := l.call(c, stage, "/api/whoami", func(body string) (string, bool) {
			return "", strings.Contains(body, `"sub"`)
		}); !ok {
			continue
		}
		l.mu.Lock()
		l.done = append(l.done, iteration{stage: stage, kid: kid})
		l.mu.Unlock()
		if counted[stage]++; counted[stage] == 2 {
			l.progress <- w
		}
	}
}

// call sends one API request; a failure is recorded, never fatal, so the
// load goes on and every failure is reported.
func (l *load) call(c *http.Client, stage int, path string, check func(string) (string, bool)) (string, bool) {
	req, _ := http.NewRequest("GET", l.g.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		l.fail(fmt.Sprintf("stage %d: GET %s: %v", stage, path, err))
		return "", false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	got, ok := check(string(b))
	if resp.StatusCode != http.StatusOK || !ok {
		l.fail(fmt.Sprintf("stage %d: GET %s: %d %.300s", stage, path, resp.StatusCode, b))
		return "", false
	}
	return got, true
}

func (l *load) fail(msg string) {
	l.mu.Lock()
	l.errs = append(l.errs, msg)
	l.mu.Unlock()
}

func (l *load) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// enter starts stage (after its reload applied) and waits until every
// client has finished two requests begun in it.
func (l *load) enter(stage int) {
	l.t.Helper()
	l.stage.Store(int64(stage))
	timeout := time.After(guard)
	for seen := map[int]bool{}; len(seen) < l.workers; {
		select {
		case w := <-l.progress:
			if int(l.stage.Load()) == stage {
				seen[w] = true
			}
		case <-timeout:
			l.t.Fatalf("stage %d: the clients did not make progress within %s; failures so far: %v", stage, guard, l.failures())
		}
	}
}

// stop ends the load and returns every completed iteration.
func (l *load) stop() []iteration {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.done)
}

// Django, run through Debian's /usr/bin/python3 like the browser tests do.

const (
	python    = "/usr/bin/python3"
	djangoDir = "../examples/django"
)

// requireDjango fails the test when Python or a package the example needs
// is missing: `make test` installs them.
func requireDjango(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing (%v); `make test` installs it (scripts/install-deps.sh)", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, "-c", "import django, rest_framework, jwt, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the Django example needs python3-django, python3-djangorestframework, python3-jwt and python3-cryptography: %v\n%s", err, out)
	}
}

// reserveAddr returns a free 127.0.0.1 address for Django's runserver,
// which binds it itself (Gatehouse's route must name it first).
func reserveAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startDjango serves the example on addr, trusting the Gatehouse at
// gatehouseURL for the audience "django", until the test ends. Its settings
// are the example's own, with JWKS_MIN_REFRESH_SECONDS 0: the compressed
// publish → promote wait.
func startDjango(t *testing.T, addr, gatehouseURL string) {
	t.Helper()
	dir := t.TempDir()
	settingsPy := "from notesite.settings import *  # noqa: F401,F403\n" +
		"GATEHOUSE_AUTH = {**GATEHOUSE_AUTH, \"JWKS_MIN_REFRESH_SECONDS\": 0}\n"
	if err := os.WriteFile(filepath.Join(dir, "rotation_settings.py"), []byte(settingsPy), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PYTHONPATH" || name == "PYTHONHOME" || name == "PYTHONSTARTUP" || name == "VIRTUAL_ENV" || strings.HasPrefix(name, "DJANGO_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PYTHONPATH="+dir,
		"DJANGO_SETTINGS_MODULE=rotation_settings",
		"DJANGO_SECRET_KEY="+rand.Text(),
		"DJANGO_ALLOWED_HOSTS=127.0.0.1",
		"DJANGO_DB_PATH="+filepath.Join(dir, "db.sqlite3"),
		"DJANGO_GATEHOUSE_JWKS_URL="+gatehouseURL+"/oauth2/jwks.json",
		"DJANGO_GATEHOUSE_ISSUER="+gatehouseURL,
		"DJANGO_GATEHOUSE_AUDIENCE=django",
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	migrate := exec.CommandContext(ctx, python, "manage.py", "migrate", "--noinput")
	migrate.Dir, migrate.Env = djangoDir, env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("manage.py migrate: %v\n%s", err, out)
	}
	out := &e2etest.SyncBuffer{}
	cmd := exec.Command(python, "manage.py", "runserver", addr, "--noreload")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = djangoDir, env, out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting manage.py runserver: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Django's output:\n%s", out.String())
		}
	})
	// Django has no readiness event to wait on: poll until it answers
	// (unauthenticated, so 401), or exits.
	c := &http.Client{Timeout: 2 * time.Second}
	e2etest.Eventually(t, "Django to answer on "+addr, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("manage.py runserver exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := c.Get("http://" + addr + "/api/whoami")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Django without a token: %d; want 401", resp.StatusCode)
		}
		return nil
	})
}
