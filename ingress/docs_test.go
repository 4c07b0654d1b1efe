package ingress

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// documented is the part of a rendered configuration that docs/ingress.md
// shows: what follows the "---- documented from here ----" line, dedented,
// without the closing brace of nginx's http block.
func documented(t *testing.T, rendered string, nginx bool) string {
	t.Helper()
	_, doc, ok := strings.Cut(rendered, "# ---- documented from here ----\n")
	if !ok {
		t.Fatal("no documented part in the configuration")
	}
	doc = strings.TrimLeft(doc, "\n")
	if !nginx {
		return doc
	}
	doc = strings.TrimSuffix(strings.TrimRight(doc, "\n"), "}")
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(doc, "\n"), "\n") {
		b.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	return b.String()
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/ingress.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsShowTestedConfigurations keeps docs/ingress.md's nginx and Caddy
// snippets equal to the configurations the journeys run, with the test's
// addresses replaced by the docs' placeholders.
func TestDocsShowTestedConfigurations(t *testing.T) {
	doc := readDoc(t)
	for _, tt := range []struct {
		name, snippet string
	}{
		{"nginx", documented(t, render(t, "nginx.conf", nginxConf{
			Listen: "80", Gatehouse: "127.0.0.1:4180", App: "127.0.0.1:8000",
		}), true)},
		{"Caddy", documented(t, render(t, "Caddyfile", caddyConf{
			Site: "app.example.com", Gatehouse: "127.0.0.1:4180", App: "127.0.0.1:8000",
		}), false)},
	} {
		if !strings.Contains(doc, "\n"+tt.snippet+"```\n") {
			t.Errorf("docs/ingress.md lacks the tested %s configuration; it should contain, in a code block:\n%s", tt.name, tt.snippet)
		}
	}
}

// TestDocsIngressNginxAnnotations checks that the ingress-nginx annotations
// in docs/ingress.md are the ones the ingress-nginx variant of the nginx
// test corresponds to: auth-url is the check location, auth-signin the
// sign-in redirect, and each auth-response-headers entry is copied from
// the check's answer onto the request to the app.
func TestDocsIngressNginxAnnotations(t *testing.T) {
	doc := readDoc(t)
	conf := render(t, "nginx.conf", nginxConf{Listen: "80", Gatehouse: "127.0.0.1:4180", App: "127.0.0.1:8000", IngressNginx: true})
	annotation := func(name string) string {
		m := regexp.MustCompile(`nginx\.ingress\.kubernetes\.io/` + name + `: "([^"]+)"`).FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/ingress.md has no %s annotation", name)
		}
		return m[1]
	}
	if got, want := annotation("auth-url"), "http://gatehouse.<namespace>.svc.cluster.local:4180/oauth2/auth"; got != want {
		t.Errorf("auth-url = %q; want %q (the check location, proxied to Gatehouse's /oauth2/auth)", got, want)
	}
	if !strings.Contains(conf, "location = /oauth2/auth {\n            internal;\n            proxy_pass http://gatehouse;") {
		t.Error("the ingress-nginx variant has no internal check location proxied to Gatehouse")
	}
	if got, want := annotation("auth-signin"), "https://$host/oauth2/start?rd=$escaped_request_uri"; got != want {
		t.Errorf("auth-signin = %q; want %q", got, want)
	}
	if !strings.Contains(conf, "error_page 401 = @signin;") ||
		!strings.Contains(conf, "return 302 $scheme://$http_host/oauth2/start?rd=$request_uri;") {
		t.Error("the ingress-nginx variant does not send a 401 to /oauth2/start with rd")
	}
	headers := strings.Split(annotation("auth-response-headers"), ",")
	want := []string{"Authorization", "X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Preferred-Username"}
	if strings.Join(headers, ",") != strings.Join(want, ",") {
		t.Errorf("auth-response-headers = %v; want %v", headers, want)
	}
	for _, h := range headers {
		variable := "$gatehouse_" + strings.TrimPrefix(strings.ReplaceAll(strings.ToLower(h), "-", "_"), "x_auth_request_")
		from := "auth_request_set " + variable + " $upstream_http_" + strings.ReplaceAll(strings.ToLower(h), "-", "_") + ";"
		to := "proxy_set_header " + h + " " + variable + ";"
		if strings.Count(conf, from) != 2 || strings.Count(conf, to) != 2 {
			t.Errorf("%s: want %q and %q in both protected locations", h, from, to)
		}
	}
}
