package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// stepTimeout bounds each browser step; a hung page fails the test
	// instead of hanging it.
	stepTimeout = 20 * time.Second
)

// tab is one tab of a fresh headless Chromium, with the status of every
// document (top-level page) response it received.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	docs    []docResponse
	newDocs chan struct{} // closed (and replaced) when a document response arrives
}

type docResponse struct {
	url    string
	status int64
}

// newTab starts Debian's Chromium, headless with a new profile in a temporary
// directory, and stops it when the test ends.
func newTab(t *testing.T, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v); `make test` installs Debian's chromium (scripts/install-deps.sh)", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root in containers
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true), // small /dev/shm in containers
		// No crash handler left writing into the profile after the browser
		// exits, so the temporary directory can be removed.
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &tab{t: t, ctx: ctx, newDocs: make(chan struct{})}
	// The first run starts the browser; it gets no timeout because the
	// browser lives as long as that call's context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventResponseReceived); ok && ev.Type == network.ResourceTypeDocument {
			b.mu.Lock()
			b.docs = append(b.docs, docResponse{ev.Response.URL, ev.Response.Status})
			close(b.newDocs)
			b.newDocs = make(chan struct{})
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs browser steps, failing the test with what the page shows if one
// fails.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
}

// eval evaluates a JavaScript expression in the page; a promise is awaited.
func eval[T any](b *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// mustEval is eval that fails the test on error.
func mustEval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := eval[T](b, expr)
	if err != nil {
		b.t.Fatalf("evaluating %s: %v\n%s", expr, err, b.describe())
	}
	return v
}

// waitUntil polls a JavaScript condition until it is true. Evaluation errors
// count as "not yet": the page may be between documents. A condition that
// returns the string "fail: ..." fails the test at once.
func (b *tab) waitUntil(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	expr := fmt.Sprintf(`(() => { const v = (%s); return v === true ? "ok" : (typeof v === "string" ? v : ""); })()`, cond)
	for {
		v, err := eval[string](b, expr)
		if err == nil {
			if v == "ok" {
				return
			}
			if msg, ok := strings.CutPrefix(v, "fail: "); ok {
				b.t.Fatalf("%s: %s\n%s", what, msg, b.describe())
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (last error: %v)\n%s", what, err, b.describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describe says where the tab is and what it shows, for failure messages.
func (b *tab) describe() string {
	loc, _ := eval[string](b, `location.href`)
	text, _ := eval[string](b, `document.body ? document.body.innerText : ""`)
	if len(text) > 600 {
		text = text[:600] + "..."
	}
	return fmt.Sprintf("tab at %s showing:\n%s", loc, text)
}

// back goes one entry back in the tab's history, like the back button, and
// returns that entry's URL. Unlike chromedp.NavigateBack it does not wait for
// a load event: a page restored from the back/forward cache fires none.
// Callers wait for what the page should show.
func (b *tab) back() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	h, err := chromedp.Call(ctx, page.GetNavigationHistory, cdp.Empty{})
	if err != nil || h.CurrentIndex < 1 {
		b.t.Fatalf("navigation history: %v (at entry %d)", err, h.CurrentIndex)
	}
	prev := h.Entries[h.CurrentIndex-1]
	if _, err := chromedp.Call(ctx, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: prev.ID}); err != nil {
		b.t.Fatalf("going back to %s: %v", prev.URL, err)
	}
	return prev.URL
}

// docStatus waits for the response to a top-level navigation to url and
// returns its status.
func (b *tab) docStatus(url string) int64 {
	b.t.Helper()
	deadline := time.After(stepTimeout)
	for {
		b.mu.Lock()
		for i := len(b.docs) - 1; i >= 0; i-- {
			if b.docs[i].url == url {
				s := b.docs[i].status
				b.mu.Unlock()
				return s
			}
		}
		next := b.newDocs
		b.mu.Unlock()
		select {
		case <-next:
		case <-deadline:
			b.t.Fatalf("no document response for %s within %s\n%s", url, stepTimeout, b.describe())
		}
	}
}

// cookie returns the browser's cookie name for url, as the browser stores it
// (including flags JavaScript cannot see), or nil.
func (b *tab) cookie(url, name string) *network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		b.t.Fatalf("reading cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// screenshot saves the whole page as a PNG in the test's temporary
// directory, for debugging; a screenshot that cannot be taken is logged.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		// A debugging aid, not an assertion: headless Chromium sometimes
		// reports a 0-width page between layouts.
		b.t.Logf("screenshot %s not taken: %v", name, err)
		return
	}
	path := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}
