package main

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHandlerChecksTheCookieAndReusesConnections(t *testing.T) {
	var requests, conns atomic.Int64
	var gotCookie, gotHost atomic.Value
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		gotCookie.Store(r.Header.Get("Cookie"))
		gotHost.Store(r.Host)
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	target, _ := url.Parse(up.URL)
	tr := newTransport(8)
	defer tr.CloseIdleConnections()
	px := httptest.NewServer(newHandler(target, "gatehouse", tr, log.New(io.Discard, "", 0)))
	defer px.Close()
	c := px.Client()

	get := func(cookie string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, px.URL+"/x/y", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, cookie := range []string{"", "other=1", "gatehouse"} {
		if code, _ := get(cookie); code != http.StatusUnauthorized {
			t.Errorf("Cookie %q: got %d; want 401", cookie, code)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("refused requests reached the upstream: %d", n)
	}
	for range 50 {
		if code, body := get("a=b; gatehouse=v"); code != http.StatusOK || body != "upstream /x/y" {
			t.Fatalf("with the cookie: got %d %q; want 200 from the upstream", code, body)
		}
	}
	if n := requests.Load(); n != 50 {
		t.Errorf("upstream got %d requests; want 50", n)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections for 50 sequential requests; want 1 (keep-alive)", n)
	}
	if c := gotCookie.Load(); c != "a=b; gatehouse=v" {
		t.Errorf("upstream got Cookie %q; want it passed through", c)
	}
	if h := gotHost.Load(); h != strings.TrimPrefix(px.URL, "http://") {
		t.Errorf("upstream got Host %q; want the client's %q", h, px.URL)
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"refproxy"},
		{"refproxy", "-upstream", "https://127.0.0.1:1"},
		{"refproxy", "-upstream", "127.0.0.1:1"},
		{"refproxy", "-upstream", "http://127.0.0.1:1", "-max-idle-conns-per-host", "0"},
		{"refproxy", "-nope"},
	} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("run(%q): got nil; want an error", args)
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // run binds it again; a test-only race another program could win, which fails loudly below
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() { done <- run(ctx, []string{"refproxy", "-listen", addr, "-upstream", up.URL}, pw) }()
	// The first log line says it is listening: the listener is bound.
	line := make([]byte, 256)
	n, err := pr.Read(line)
	if err != nil || !strings.Contains(string(line[:n]), "listening on "+addr) {
		t.Fatalf("first log line %q, %v; want it listening on %s", line[:n], err, addr)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Cookie", "gatehouse=1")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d; want 200", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v; want nil", err)
	}
	pw.Close()
}
