package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// TestStaleCookieIsReissued: after a cookie secret is prepended, a cookie
// sealed with the older one still works and its next response carries the
// same ticket sealed with the newest (on the proxied and the forward-auth
// answer alike); a current cookie gets no Set-Cookie; once the older
// secret is dropped, the re-issued cookie still signs in and the old one
// does not.
func TestStaleCookieIsReissued(t *testing.T) {
	f := newFixture(t, nil)
	old := f.plant(t) // sealed with the fixture's only secret
	oldSecret := []byte("proxy-test-secret-0123456789abcdef0123")
	newSecret := []byte("proxy-test-newer-secret-0123456789abcdef")
	rotated, err := sessionstore.NewCodec([][]byte{newSecret, oldSecret}, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newestOnly, err := sessionstore.NewCodec([][]byte{newSecret}, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.cfg.Cookie.Codec = rotated
	want, err := rotated.DecodeTicket("gatehouse", old)
	if err != nil {
		t.Fatal(err)
	}

	reissued := func(rec *httptest.ResponseRecorder) *http.Cookie {
		t.Helper()
		var found *http.Cookie
		for _, c := range rec.Result().Cookies() {
			if c.Name == "gatehouse" {
				found = c
			}
		}
		return found
	}
	var fresh string
	for i, path := range []string{"/page", "/page", "/oauth2/auth"} { // the second is a ticket-cache hit
		req := httptest.NewRequest("GET", "https://app.example.com"+path, nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", "gatehouse="+old)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("request %d (%s) with a cookie of the older secret: got %d; want it served", i, path, rec.Code)
		}
		c := reissued(rec)
		if c == nil {
			t.Fatalf("request %d (%s): no Set-Cookie; want the cookie re-issued under the newest secret", i, path)
		}
		got, err := newestOnly.DecodeTicket("gatehouse", c.Value)
		if err != nil || got != want {
			t.Fatalf("request %d: the re-issued cookie does not decode to the same ticket with the newest secret alone: %v", i, err)
		}
		if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 || c.MaxAge > int((12*time.Hour).Seconds()) {
			t.Errorf("request %d: re-issued cookie %+v; want HttpOnly, Path=/, SameSite=Lax and the session's remaining lifetime", i, c)
		}
		fresh = c.Value
	}

	if rec := f.get(fresh); rec.Code != 200 || reissued(rec) != nil {
		t.Fatalf("a current cookie: got %d with Set-Cookie %v; want 200 and no Set-Cookie", rec.Code, reissued(rec))
	}

	// The older secret retired: a new configuration, a new server.
	retired := newFixture(t, f.store)
	retired.srv.cfg.Cookie.Codec = newestOnly
	if code := retired.get(fresh).Code; code != 200 {
		t.Errorf("the re-issued cookie after the older secret was dropped: got %d; want 200", code)
	}
	if code := retired.get(old).Code; code != 401 {
		t.Errorf("the old cookie after its secret was dropped: got %d; want 401", code)
	}
}

// TestCurrentCookieDecodeAllocatesNothing: for a cookie of the newest
// secret, finding the ticket costs no allocation beyond reading the Cookie
// header (the hot path did not grow with rotation support).
func TestCurrentCookieDecodeAllocatesNothing(t *testing.T) {
	f := newFixture(t, nil)
	req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
	req.Header.Set("Cookie", "gatehouse="+f.plant(t))
	if _, fresh, ok := f.srv.decodeTicket(req); !ok || fresh != "" {
		t.Fatalf("decodeTicket = ok %v, fresh %q; want a current ticket", ok, fresh)
	}
	parse := testing.AllocsPerRun(200, func() { _ = req.CookiesNamed("gatehouse") })
	decode := testing.AllocsPerRun(200, func() { _, _, _ = f.srv.decodeTicket(req) })
	if decode > parse {
		t.Errorf("decodeTicket of a cached current cookie: %.0f allocations; want no more than parsing the header (%.0f)", decode, parse)
	}
}
