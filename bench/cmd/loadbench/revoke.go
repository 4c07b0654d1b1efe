package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// revocation is one trial: a session signed out on Gatehouse A while B, which
// shares A's Redis and cookie secrets, serves requests with its cookie.
type revocation struct {
	// Accepted counts B's 2xx answers to requests sent after A's sign-out returned.
	Accepted int `json:"accepted_after_sign_out"`
	// LastAccepted is when the last of those was sent, after the sign-out returned; 0 if none.
	LastAcceptedMS float64 `json:"last_accepted_ms"`
	// FirstRefused is when B's first refused request was sent, relative to the sign-out's return
	// (negative if it was sent while the sign-out was in flight).
	FirstRefusedMS float64 `json:"first_refused_ms"`
	// SignOutMS is how long A's sign-out request took.
	SignOutMS float64 `json:"sign_out_ms"`
	// Requests is how many requests B got in the whole trial.
	Requests int `json:"requests"`
}

// maxRevocationWait bounds how long one trial watches B after the sign-out.
const maxRevocationWait = 15 * time.Second

// measureRevocation logs in on a, checks b accepts the cookie, then hammers b
// with one request at a time while a signs the session out, and reports how
// long b kept accepting it.
func measureRevocation(ctx context.Context, a, b *proxy, idp string) (revocation, error) {
	var rv revocation
	cookie, err := login(ctx, a, idp, "alice", "alice-pw")
	if err != nil {
		return rv, err
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	get := func() (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/", nil)
		if err != nil {
			return 0, fmt.Errorf("loadbench: %w", err)
		}
		req.Header.Set("Cookie", a.cookie+"="+cookie)
		resp, err := c.Do(req)
		if err != nil {
			return 0, fmt.Errorf("loadbench: revocation: GET %s: %w", b.name, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// B must accept A's session before anything is revoked, and warm any cache it has.
	for range 20 {
		code, err := get()
		if err != nil {
			return rv, err
		}
		if code/100 != 2 {
			return rv, fmt.Errorf("loadbench: revocation: %s answered %d to %s's cookie before the sign-out; want 2xx", b.name, code, a.name)
		}
	}

	var signedOut atomic.Int64 // UnixNano when A's sign-out returned; 0 before
	var signOutSent atomic.Int64
	type result struct {
		rv  revocation
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r revocation
		for {
			sent := time.Now()
			code, err := get()
			r.Requests++
			if err != nil {
				done <- result{r, err}
				return
			}
			t1 := signedOut.Load()
			if code/100 == 2 {
				if t1 != 0 && sent.UnixNano() >= t1 {
					r.Accepted++
					r.LastAcceptedMS = float64(sent.UnixNano()-t1) / 1e6
				}
			} else {
				t0 := signOutSent.Load()
				if t0 == 0 || sent.UnixNano() < t0 {
					done <- result{r, fmt.Errorf("loadbench: revocation: %s refused the session (%d) before the sign-out", b.name, code)}
					return
				}
				// Refused while the sign-out is still in flight: wait for its return.
				for t1 == 0 && time.Since(sent) < maxRevocationWait {
					time.Sleep(time.Millisecond)
					t1 = signedOut.Load()
				}
				r.FirstRefusedMS = float64(sent.UnixNano()-t1) / 1e6
				done <- result{r, nil}
				return
			}
			if t1 != 0 && time.Since(time.Unix(0, t1)) > maxRevocationWait {
				done <- result{r, fmt.Errorf("loadbench: revocation: %s still accepted the session %v after the sign-out", b.name, maxRevocationWait)}
				return
			}
		}
	}()

	time.Sleep(200 * time.Millisecond)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/oauth2/sign_out", nil)
	if err != nil {
		return rv, fmt.Errorf("loadbench: %w", err)
	}
	req.Header.Set("Cookie", a.cookie+"="+cookie)
	req.Header.Set("Origin", a.url)
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	signOutSent.Store(start.UnixNano())
	resp, err := c.Do(req)
	end := time.Now()
	if err != nil {
		signedOut.Store(end.UnixNano())
		<-done
		return rv, fmt.Errorf("loadbench: revocation: signing out on %s: %w", a.name, err)
	}
	resp.Body.Close()
	signedOut.Store(end.UnixNano())
	res := <-done
	if res.err != nil {
		return rv, res.err
	}
	if resp.StatusCode/100 != 2 {
		return rv, fmt.Errorf("loadbench: revocation: sign-out on %s answered %d; want 2xx", a.name, resp.StatusCode)
	}
	rv = res.rv
	rv.SignOutMS = float64(end.Sub(start)) / 1e6
	return rv, nil
}
