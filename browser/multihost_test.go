package browser

import (
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestManyHostsInChromium is the multi-host journey (docs/multi-host.md) in
// a real browser: three host names that Chromium resolves to Gatehouse's
// loopback address, one sign-in, one sign-out.
func TestManyHostsInChromium(t *testing.T) {
	ln := e2etest.Listen(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	app, api, grafana := "http://app.example.test:"+port, "http://api.example.test:"+port, "http://grafana.example.test:"+port
	e := e2etest.Start(t, e2etest.Options{
		Listener:  ln,
		PublicURL: app,
		Env: map[string]string{
			"GATEHOUSE_REDIRECT_ALLOWED_DOMAINS": "api.example.test:" + port + ",grafana.example.test:" + port,
		},
	})
	b := newTab(t, chromedp.Flag("host-resolver-rules", "MAP *.example.test 127.0.0.1"))
	loginForm := fmt.Sprintf(`location.href.startsWith(%q) && !!document.querySelector("input[name=password]")`, e.IDP.URL)

	b.do("opening app", chromedp.Navigate(app+"/home"))
	b.waitUntil("the provider's login form", loginForm)
	b.do("signing in as alice",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "alice-pw"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	b.waitUntil("back on app", fmt.Sprintf(`location.href === %q`, app+"/home"))
	if s := b.docStatus(app + "/home"); s != 200 {
		t.Fatalf("app: status %d; want 200", s)
	}

	for _, host := range []string{api, grafana} {
		b.do("opening "+host, chromedp.Navigate(host+"/reports?week=2"))
		b.waitUntil("landed on "+host+" without a login form",
			fmt.Sprintf(`(location.href.startsWith(%q) ? "fail: sent to the provider's login" : location.href === %q)`, e.IDP.URL, host+"/reports?week=2"))
		if s := b.docStatus(host + "/reports?week=2"); s != 200 {
			t.Fatalf("%s: status %d; want 200", host, s)
		}
		c := b.cookie(host, "gatehouse")
		if u, _ := url.Parse(host); c == nil || !c.HTTPOnly || c.Domain != u.Hostname() {
			t.Fatalf("%s: session cookie %+v; want a host-only HttpOnly cookie of its own", host, c)
		}
	}

	b.do("signing out on api", chromedp.Navigate(api+"/oauth2/sign_out"))
	b.waitUntil("the signed-out page", `document.body.innerText.includes("signed out")`)
	for _, host := range []string{app, grafana} {
		b.do("opening "+host+" again", chromedp.Navigate(host+"/again"))
		b.waitUntil(host+" asks for a login again", loginForm)
	}
}
