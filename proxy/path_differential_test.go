package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The differential test (issue 8, part 3): how three common upstreams read
// each tricky request path, and whether Gatehouse's decision is safe for
// all three. The routes are [/public/ public] [/admin/] [/api] [/ home],
// with home both public and protected, so a path that any upstream reads
// as admin or api (or as home, when home is protected) must never be
// decided public by Gatehouse.
//
// Readings:
//   - goMux: Go's net/http (http.ReadRequest, then http.ServeMux with a
//     pattern per route), run in process;
//   - django: Django's URL resolver behind a PEP 3333 server, run for real
//     by TestDifferentialDjango through /usr/bin/python3
//     (testdata/pathreaders/django_paths.py), and modelled by djangoRoute
//     for the fuzz target;
//   - tomcat: Tomcat 10.1 with default connector settings, run for real by
//     TestDifferentialTomcat (testdata/pathreaders/TomcatPaths.java, an
//     embedded Tomcat from Debian's libtomcat10-embed-java), and modelled
//     by tomcatRoute: CoyoteAdapter.postParseRequest strips ";" parameters
//     from every segment of the raw URI (parsePathParameters), decodes
//     %XX (refusing %2F), then normalize() refuses '\' and NUL, collapses
//     "//" and resolves dot segments (refusing to climb above the root).
//
// A reading is a route name, "400" (the server refuses the request) or
// "redirect" (Go's ServeMux redirects to the cleaned path, which the
// client then requests through Gatehouse again). Gatehouse's decision is
// a route name, the route name and "?" when the path is ambiguous (never
// public, every route's rules), or "400".
var differentialTable = []struct {
	target                string // request target as sent on the request line
	goMux, django, tomcat string
	gatehouse             string
}{
	// Plain paths: every reader agrees.
	{"/", "home", "home", "home", "home"},
	{"/public/x", "public", "public", "public", "public"},
	{"/admin/x", "admin", "admin", "admin", "admin"},
	{"/api", "api", "api", "api", "api"},
	{"/api/v1/items?next=/public/", "api", "api", "api", "api"},
	{"/apix", "home", "home", "home", "home"},
	{"/%61dmin/x", "admin", "admin", "admin", "admin"},
	{"/public/caf%C3%A9", "public", "public", "public", "public"},
	{"/public/x%3Dy", "public", "public", "public", "public"},

	// A prefix route with a trailing slash, asked for without it.
	{"/admin", "admin", "admin", "admin", "admin"},
	{"/public", "public", "public", "public", "public"},

	// Dot segments: Django does not resolve them, Go redirects, Tomcat
	// resolves them after decoding.
	{"/public/../admin/x", "redirect", "public", "admin", "admin?"},
	{"/public/%2e%2e/admin/x", "public", "public", "admin", "admin?"},
	{"/public/%2E./admin", "public", "public", "admin", "admin?"},
	{"/public/./../admin", "redirect", "public", "admin", "admin?"},
	{"/public/..", "redirect", "public", "home", "home?"},
	{"/../admin/x", "redirect", "home", "400", "admin?"},
	{"/public/x/..", "redirect", "public", "public", "public?"},

	// Repeated and encoded slashes.
	{"//admin/x", "redirect", "home", "admin", "admin?"},
	{"/public//x", "redirect", "public", "public", "public?"},
	// Django reads "//public/x" below "/", not below "/public/".
	{"//public//x", "redirect", "home", "public", "public?"},
	{"/public%2Fx", "home", "public", "400", "public?"},
	{"/public%2F..%2Fadmin/x", "home", "public", "400", "admin?"},
	{"/admin%2Fx", "home", "admin", "400", "admin?"},

	// Servlet path parameters: Tomcat strips ";..." from every segment.
	{"/public/..;/admin/x", "public", "public", "admin", "400"},
	{"/public/x/..;a", "public", "public", "public", "400"},
	{"/public/%2e%2e;/admin", "public", "public", "admin", "400"},
	{"/public/.;x/../admin", "redirect", "public", "admin", "400"},
	{"/public/..%3Bx/admin", "public", "public", "public", "400"},
	{"/admin;x=1/y", "home", "home", "admin", "home?"},
	{"/admin;jsessionid=0123", "home", "home", "admin", "home?"},
	{"/;x/admin/y", "home", "home", "admin", "home?"},
	{"/api;x", "home", "home", "api", "home?"},
	{"/public/x;y", "public", "public", "public", "public?"},
	{"/public/%3B/../admin", "redirect", "public", "public", "public?"},
	{"/public/x;/../../admin", "redirect", "public", "admin", "admin?"},

	// Percent-encodings that are not UTF-8 (overlong '.' and '/').
	{"/public/%c0%ae%c0%ae/admin", "public", "public", "400", "400"},
	{"/public/%c0%af..%c0%afadmin", "public", "public", "400", "400"},
	{"/public/%e0%80%ae%e0%80%ae/admin", "public", "public", "400", "400"},
	{"/public/%ff", "public", "public", "400", "400"},

	// Unicode that NFKC (IIS, some frameworks) turns into '.', '/' or '\'.
	{"/public/%EF%BC%8E%EF%BC%8E/admin", "public", "public", "public", "400"},
	{"/public%EF%BC%8F..%EF%BC%8Fadmin", "home", "home", "home", "400"},
	{"/public/%E2%80%A5/admin", "public", "public", "public", "400"},
	{"/public/%EF%BC%BC", "public", "public", "public", "400"},
	{"/public/a%E2%88%95b", "public", "public", "public", "400"},
	// ... and text that NFKC changes otherwise ("ａｄｍｉｎ" is "admin").
	{"/%EF%BD%81dmin/x", "home", "home", "home", "home?"},

	// Double encoding: "%252e" is "%2e" once decoded, "." twice.
	{"/public/%252e%252e/admin", "public", "public", "public", "public?"},
	{"/public/%25u002e", "public", "public", "public", "public?"},

	// An encoded '?' or '#', at which some servers cut the path.
	{"/admin%3F/../public/", "redirect", "home", "public", "public?"},
	{"/admin%23/../public/", "redirect", "home", "public", "public?"},

	// Windows trims a segment's trailing dots and spaces.
	{"/admin./x", "home", "home", "home", "home?"},
	{"/admin%20/x", "home", "home", "home", "home?"},

	// Backslashes, NUL and line feeds.
	{"/public/..%5Cadmin", "public", "public", "400", "400"},
	{"/public%5C..%5Cadmin", "home", "home", "400", "400"},
	{"/api%00", "home", "home", "400", "400"},
	// Django's "$" also matches before a final newline.
	{"/api%0A", "home", "api", "home", "400"},

	// Raw bytes Tomcat's request-line parser refuses.
	{"/public/x\"y", "public", "public", "400", "public"},
	{"/public/x|y", "public", "public", "400", "public"},
	{"/public/x^y", "public", "public", "400", "public"},
	{"/public/caf\xc3\xa9", "public", "public", "400", "public"},
	{"/public/x#/../../admin", "redirect", "public", "400", "admin?"},
}

// differentialRoutes are the table's Gatehouse routes.
func differentialRoutes(homePublic bool) []*Route {
	return []*Route{
		{Name: "public", PathPrefix: "/public/", Public: true},
		{Name: "admin", PathPrefix: "/admin/"},
		{Name: "api", PathPrefix: "/api"},
		{Name: "home", PathPrefix: "/", Public: homePublic},
	}
}

// parseTarget parses a request target the way Go's HTTP server does.
func parseTarget(target string) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(strings.NewReader(
		"GET " + target + " HTTP/1.1\r\nHost: app.example.com\r\n\r\n")))
}

// gatehouseDecision is Gatehouse's reading of target against routes, in
// the table's notation.
func gatehouseDecision(routes []*Route, target string) (string, requestPath) {
	r, err := parseTarget(target)
	if err != nil {
		return "400", requestPath{}
	}
	p, err := readPath(r.URL)
	if err != nil {
		return "400", requestPath{}
	}
	rt := match(routes, "app.example.com", p.clean)
	if rt == nil {
		return "404", p
	}
	if p.ambiguous {
		return rt.Name + "?", p
	}
	return rt.Name, p
}

// unsafeFor explains why a decision is not safe given how an upstream reads
// the same request, or returns "".
func unsafeFor(routes []*Route, decision, reading string) string {
	if decision == "400" || strings.HasSuffix(decision, "?") || decision == reading {
		return ""
	}
	for _, rt := range routes {
		if rt.Name == reading && !rt.Public {
			if d := routeNamed(routes, decision); d != nil && d.Public {
				return fmt.Sprintf("decided public %s, read as protected %s", decision, reading)
			}
			return fmt.Sprintf("decided %s, read as %s: another route's rules", decision, reading)
		}
	}
	return ""
}

func routeNamed(routes []*Route, name string) *Route {
	for _, rt := range routes {
		if rt.Name == name {
			return rt
		}
	}
	return nil
}

// routesMux is Go's ServeMux with the table's routes.
var routesMux = func() *http.ServeMux {
	mux := http.NewServeMux()
	for pattern, name := range map[string]string{
		"/public/": "public", "/public": "public",
		"/admin/": "admin", "/admin": "admin",
		"/api/": "api", "/api": "api",
		"/": "home",
	} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	return mux
}()

// goRoute is how a Go upstream routes target.
func goRoute(target string) string {
	r, err := parseTarget(target)
	if err != nil {
		return "400"
	}
	rec := httptest.NewRecorder()
	routesMux.ServeHTTP(rec, r)
	switch rec.Code {
	case http.StatusOK:
		return rec.Body.String()
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return "redirect"
	}
	return strconv.Itoa(rec.Code)
}

// routeOf maps a path an upstream read to the table's route, with the
// prefix semantics every reader's configuration mirrors ("/admin/*" in a
// servlet mapping, "^admin(/|$)" in Django): "/x" and below "/x/".
func routeOf(path string) string {
	for _, name := range []string{"public", "admin", "api"} {
		if rest, ok := strings.CutPrefix(path, "/"+name); ok && (rest == "" || rest[0] == '/') {
			return name
		}
	}
	return "home"
}

// djangoPath models Django behind wsgiref: PATH_INFO is the path (up to
// the first '?') percent-decoded into bytes, which Django decodes as UTF-8,
// re-percent-encoding bytes that are not.
func djangoPath(target string) string {
	path, _, _ := strings.Cut(target, "?")
	var raw []byte
	for i := 0; i < len(path); i++ {
		if path[i] == '%' && i+2 < len(path) && ishex(path[i+1]) && ishex(path[i+2]) {
			raw = append(raw, unhex(path[i+1])<<4|unhex(path[i+2]))
			i += 2
			continue
		}
		raw = append(raw, path[i])
	}
	var b strings.Builder
	for len(raw) > 0 {
		r, n := utf8.DecodeRune(raw)
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, "%%%02X", raw[0])
		} else {
			b.Write(raw[:n])
		}
		raw = raw[n:]
	}
	return b.String()
}

// djangoRoute is the route Django's resolver picks for target: it resolves
// the path as is, and a regex "$" also matches before a final newline.
func djangoRoute(target string) string {
	p := djangoPath(target)
	return routeOf(strings.TrimSuffix(p, "\n"))
}

// tomcatPath models Tomcat 10.1's reading of a request target with the
// default connector settings; ok is false where Tomcat answers 400.
func tomcatPath(target string) (string, bool) {
	// Http11InputBuffer: the request line's target may not contain
	// these bytes (relaxedPathChars is empty by default).
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"#<>[\\]^`{|}", c) >= 0 {
			return "", false
		}
	}
	path, _, _ := strings.Cut(target, "?")
	// parsePathParameters: each ";..." up to the next '/' goes, before decoding.
	var stripped strings.Builder
	for len(path) > 0 {
		semi := strings.IndexByte(path, ';')
		if semi < 0 {
			stripped.WriteString(path)
			break
		}
		stripped.WriteString(path[:semi])
		path = path[semi:]
		if slash := strings.IndexByte(path, '/'); slash >= 0 {
			path = path[slash:]
		} else {
			path = ""
		}
	}
	// UDecoder: %XX decoded; a malformed escape or %2F is a 400.
	s := stripped.String()
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
			return "", false
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if c == '/' {
			return "", false
		}
		b = append(b, c)
		i += 2
	}
	// normalize()
	if len(b) == 0 || b[0] != '/' || bytes.IndexByte(b, '\\') >= 0 || bytes.IndexByte(b, 0) >= 0 {
		return "", false
	}
	for bytes.Contains(b, []byte("//")) {
		b = bytes.ReplaceAll(b, []byte("//"), []byte("/"))
	}
	// A final "/." or "/.." is resolved as if followed by '/', and that
	// '/' is not kept (Tomcat 10.1.60: "/public/x/.." is "/public").
	appended := bytes.HasSuffix(b, []byte("/.")) || bytes.HasSuffix(b, []byte("/.."))
	if appended {
		b = append(b, '/')
	}
	for {
		i := bytes.Index(b, []byte("/./"))
		if i < 0 {
			break
		}
		b = append(b[:i], b[i+2:]...)
	}
	for {
		i := bytes.Index(b, []byte("/../"))
		if i < 0 {
			break
		}
		if i == 0 {
			return "", false
		}
		j := bytes.LastIndexByte(b[:i], '/')
		b = append(b[:j], b[i+3:]...)
	}
	if appended && len(b) > 1 {
		b = b[:len(b)-1]
	}
	// convertURI: UTF-8; Tomcat 10.1 answers 400 to malformed input.
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func tomcatRoute(target string) string {
	p, ok := tomcatPath(target)
	if !ok {
		return "400"
	}
	return routeOf(p)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// forwardedTarget is the request target the reverse proxy sends upstream for a
// decided path: clean, escaped by net/url (upstream.go sets URL.Path and
// clears RawPath).
func forwardedTarget(p requestPath) string {
	return (&url.URL{Path: p.clean}).EscapedPath()
}

// TestDifferential checks the table: Gatehouse decides as the table says,
// the decision is safe for every reading, Go's column is what net/http
// does, and the Django and Tomcat models give their columns (the real
// servers are held to the same columns by TestDifferentialDjango and
// TestDifferentialTomcat).
func TestDifferential(t *testing.T) {
	for _, tt := range differentialTable {
		t.Run(tt.target, func(t *testing.T) {
			for _, homePublic := range []bool{true, false} {
				routes := differentialRoutes(homePublic)
				got, _ := gatehouseDecision(routes, tt.target)
				if got != tt.gatehouse {
					t.Errorf("Gatehouse decides %s; want %s", got, tt.gatehouse)
				}
				for reader, reading := range map[string]string{"Go": tt.goMux, "Django": tt.django, "Tomcat": tt.tomcat} {
					if why := unsafeFor(routes, got, reading); why != "" {
						t.Errorf("home public=%v: unsafe for %s: %s", homePublic, reader, why)
					}
				}
			}
			if got := goRoute(tt.target); got != tt.goMux {
				t.Errorf("Go reads %s; want %s", got, tt.goMux)
			}
			if got := djangoRoute(tt.target); got != tt.django {
				t.Errorf("Django model reads %s; want %s", got, tt.django)
			}
			if got := tomcatRoute(tt.target); got != tt.tomcat {
				t.Errorf("Tomcat model reads %s; want %s", got, tt.tomcat)
			}
		})
	}
}

// TestDifferentialForwarded checks what the reverse proxy forwards: every
// reader routes the forwarded form of an unambiguous path exactly as
// Gatehouse did, and reads the path Gatehouse decided on.
func TestDifferentialForwarded(t *testing.T) {
	routes := differentialRoutes(true)
	for _, tt := range differentialTable {
		decision, p := gatehouseDecision(routes, tt.target)
		if decision == "400" || p.ambiguous {
			continue
		}
		out := forwardedTarget(p)
		for reader, got := range map[string]string{"Go": goRoute(out), "Django": djangoRoute(out), "Tomcat": tomcatRoute(out)} {
			if got != decision {
				t.Errorf("%q forwarded as %q: %s reads %s; Gatehouse decided %s", tt.target, out, reader, got, decision)
			}
		}
		if dp := djangoPath(out); dp != p.clean {
			t.Errorf("%q forwarded as %q: Django's path_info %q; want %q", tt.target, out, dp, p.clean)
		}
		if tp, _ := tomcatPath(out); tp != p.clean {
			t.Errorf("%q forwarded as %q: Tomcat reads %q; want %q", tt.target, out, tp, p.clean)
		}
	}
}

// pathReading is one real server's answer for one request target.
type pathReading struct {
	Status int    `json:"status"`
	Route  string `json:"route"`
	Path   string `json:"path"`
}

// route is the reading in the table's notation.
func (r pathReading) route() string {
	if r.Status == http.StatusOK {
		return r.Route
	}
	return strconv.Itoa(r.Status)
}

// differentialTargets are the table's targets and the forwarded form of
// each decided one, each once.
func differentialTargets() (targets []string, forwardedOf map[string]string) {
	seen := map[string]bool{}
	forwardedOf = map[string]string{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			targets = append(targets, s)
		}
	}
	for _, tt := range differentialTable {
		add(tt.target)
		if d, p := gatehouseDecision(differentialRoutes(true), tt.target); d != "400" {
			forwardedOf[tt.target] = forwardedTarget(p)
			add(forwardedTarget(p))
		}
	}
	return targets, forwardedOf
}

// checkRealReadings holds a real server's readings to the table's column,
// its routing to routeOf (so the models' route mapping is the server's),
// and the forwarded forms to Gatehouse's decision.
func checkRealReadings(t *testing.T, reader string, column func(int) string, model func(string) (string, bool), got map[string]pathReading) {
	t.Helper()
	_, forwardedOf := differentialTargets()
	for i, tt := range differentialTable {
		r := got[tt.target]
		if r.route() != column(i) {
			t.Errorf("%q: %s reads %s (path %q); the table says %s", tt.target, reader, r.route(), r.Path, column(i))
		}
		if r.Status == http.StatusOK {
			if want, ok := model(tt.target); !ok || want != r.Path {
				t.Errorf("%q: %s reads path %q; its model says %q (ok=%v)", tt.target, reader, r.Path, want, ok)
			}
		}
		out, ok := forwardedOf[tt.target]
		if !ok {
			continue
		}
		decision, p := gatehouseDecision(differentialRoutes(true), tt.target)
		fr := got[out]
		if !p.ambiguous && fr.route() != decision {
			t.Errorf("%q forwarded as %q: %s reads %s; Gatehouse decided %s", tt.target, out, reader, fr.route(), decision)
		}
		if why := unsafeFor(differentialRoutes(false), decision, fr.route()); why != "" {
			t.Errorf("%q forwarded as %q: unsafe for %s: %s", tt.target, out, reader, why)
		}
	}
}

// debianPython is the interpreter Debian's python3-django installs for.
const debianPython = "/usr/bin/python3"

// TestDifferentialDjango asks real Django (python3-django, installed by
// scripts/install-deps.sh) how it reads every target of the table.
func TestDifferentialDjango(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, debianPython, "-c", "import django").CombinedOutput(); err != nil {
		t.Fatalf("the Django column needs python3-django for %s (scripts/install-deps.sh installs it): %v\n%s", debianPython, err, out)
	}
	targets, _ := differentialTargets()
	hexes := make([]string, len(targets))
	for i, s := range targets {
		hexes[i] = hex.EncodeToString([]byte(s))
	}
	in, err := json.Marshal(hexes)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "pathreaders", "django_paths.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("django_paths.py: %v\n%s", err, stderr.Bytes())
	}
	var readings []pathReading
	if err := json.Unmarshal(out, &readings); err != nil || len(readings) != len(targets) {
		t.Fatalf("django_paths.py answered %d readings for %d targets: %v\n%s", len(readings), len(targets), err, out)
	}
	got := map[string]pathReading{}
	for i, s := range targets {
		got[s] = readings[i]
	}
	checkRealReadings(t, "Django", func(i int) string { return differentialTable[i].django },
		func(s string) (string, bool) { return djangoPath(s), true }, got)
}

// tomcatJar is Debian's libtomcat10-embed-java.
const tomcatJar = "/usr/share/java/tomcat10-embed-core.jar"

// TestDifferentialTomcat asks a real Tomcat (an embedded Tomcat 10.1 from
// Debian's libtomcat10-embed-java, run by the JDK's single-file source
// launcher; scripts/install-deps.sh installs both) how it reads every
// target of the table, each sent as is on a raw HTTP/1.1 request line.
func TestDifferentialTomcat(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("the Tomcat column needs a JDK (scripts/install-deps.sh installs default-jdk-headless): %v", err)
	}
	if _, err := os.Stat(tomcatJar); err != nil {
		t.Fatalf("the Tomcat column needs libtomcat10-embed-java (scripts/install-deps.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	src, err := filepath.Abs(filepath.Join("testdata", "pathreaders", "TomcatPaths.java"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, java, "-cp", tomcatJar, src, t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Closing stdin stops Tomcat; Wait reaps it (or the context kills it).
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil && t.Failed() {
			t.Logf("tomcat: %v", err)
		}
		if t.Failed() {
			t.Logf("tomcat's log:\n%s", logs.Bytes())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "port ")
	if err != nil || !ok {
		t.Fatalf("tomcat did not announce its port (%q, %v)", line, err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)

	targets, _ := differentialTargets()
	got := map[string]pathReading{}
	for _, s := range targets {
		r, err := rawGet(ctx, addr, s)
		if err != nil {
			t.Fatalf("GET %q from tomcat: %v", s, err)
		}
		got[s] = r
	}
	checkRealReadings(t, "Tomcat", func(i int) string { return differentialTable[i].tomcat }, tomcatPath, got)
}

// rawGet sends target exactly as given on an HTTP/1.1 request line (no
// client normalizes it) and reads the answer of a TomcatPaths servlet.
func rawGet(ctx context.Context, addr, target string) (pathReading, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return pathReading{}, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n"); err != nil {
		return pathReading{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return pathReading{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return pathReading{}, err
	}
	r := pathReading{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		name, path, ok := strings.Cut(string(body), "\n")
		if !ok {
			return pathReading{}, errors.New("answer without a route line")
		}
		r.Route, r.Path = name, path
	}
	return r, nil
}

// FuzzPathDecision checks, for any request target, that a decision Gatehouse
// makes is safe under each reader: a path decided public (or decided for one
// protected route) is never read by Go's ServeMux, the Django model or the
// Tomcat model as another protected route, whether home is public or not;
// and that the forwarded form of an unambiguous path is routed by each
// reader exactly as Gatehouse routed it.
func FuzzPathDecision(f *testing.F) {
	for _, tt := range differentialTable {
		f.Add(tt.target)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if strings.ContainsAny(target, " \r\n") {
			return // not one request target
		}
		for _, homePublic := range []bool{true, false} {
			routes := differentialRoutes(homePublic)
			decision, p := gatehouseDecision(routes, target)
			for reader, reading := range map[string]string{"Go": goRoute(target), "Django": djangoRoute(target), "Tomcat": tomcatRoute(target)} {
				if why := unsafeFor(routes, decision, reading); why != "" {
					t.Fatalf("%q (home public=%v): unsafe for %s: %s", target, homePublic, reader, why)
				}
			}
			if decision == "400" || decision == "404" || p.ambiguous {
				continue
			}
			out := forwardedTarget(p)
			for reader, reading := range map[string]string{"Go": goRoute(out), "Django": djangoRoute(out), "Tomcat": tomcatRoute(out)} {
				if reading != decision {
					t.Fatalf("%q forwarded as %q: %s reads %s; Gatehouse decided %s", target, out, reader, reading, decision)
				}
			}
		}
	})
}
