package main

import (
	"fmt"
	"io"
	"math"
)

// This file holds issue 12's comparisons: Gatehouse against the reference
// proxies (nginx-ref, rp-ref), the ingress deployment, and its targets.

// pairRatio is field(a) ÷ field(b) in one round; NaN unless both rows are
// there, both passed their checks, and b's value is positive.
func pairRatio(round map[string]sample, a, b string, field func(sample) float64) float64 {
	sa, okA := round[a]
	sb, okB := round[b]
	if !okA || !okB || !sa.ok() || !sb.ok() || field(sb) <= 0 {
		return math.NaN()
	}
	return field(sa) / field(sb)
}

// medianPairRatio is the median over the rounds of pairRatio: every ratio
// compares runs of the same round.
func medianPairRatio(rounds []map[string]sample, a, b string, field func(sample) float64) float64 {
	var rs []float64
	for _, r := range rounds {
		rs = append(rs, pairRatio(r, a, b, field))
	}
	return median(rs)
}

func reqPerSec(s sample) float64 { return s.ReqPerSec }
func proxyCPU(s sample) float64  { return s.ProxyCPUus }

// totalCPU is what a request costs the proxy and its auth service together
// (nginx + the auth service, for an ingress).
func totalCPU(s sample) float64 { return s.ProxyCPUus + s.AuthCPUus }

// rowsOf returns, for each name that is a selected scenario, its sample:
// from sum's medians when sum is not nil, else from the only round.
func rowsOf(scs []scenario, rounds []map[string]sample, sum *summary, names ...string) ([]scenario, []sample, bool) {
	var out []scenario
	var ss []sample
	for _, name := range names {
		for _, sc := range scs {
			if sc.name != name {
				continue
			}
			var s sample
			var ok bool
			if sum != nil {
				s, ok = sum.med[name]
			} else if len(rounds) == 1 {
				s, ok = rounds[0][name]
			}
			if !ok {
				s = sample{Scenario: name, Problem: "no passing round"}
			}
			out, ss = append(out, sc), append(ss, s)
		}
	}
	return out, ss, len(out) > 0
}

// printReferences prints Gatehouse's proxied and /oauth2/auth rows as
// ratios to the reference proxies, for one round or as medians of the
// per-round ratios over rounds (sum not nil).
func printReferences(w io.Writer, title string, scs []scenario, rounds []map[string]sample, sum *summary) {
	refs, _, ok := rowsOf(scs, rounds, sum, "nginx-ref", "rp-ref")
	if !ok {
		return
	}
	ghs, samples, ok := rowsOf(scs, rounds, sum, "gh-proxy", "gh-auth")
	if !ok {
		return
	}
	fmt.Fprintf(w, "\n#### %s\n\nEach ratio is Gatehouse's figure ÷ the reference's in the same round: "+
		"req/s below 1 is slower, CPU/req above 1 costs more.\n\n| Gatehouse | req/s | proxy CPU µs/req |", title)
	for _, r := range refs {
		fmt.Fprintf(w, " req/s ÷ %s | CPU/req ÷ %s |", r.name, r.name)
	}
	fmt.Fprintf(w, "\n|---|--:|--:|")
	for range refs {
		fmt.Fprintf(w, "--:|--:|")
	}
	fmt.Fprintln(w)
	for i, sc := range ghs {
		s := samples[i]
		fmt.Fprintf(w, "| %s | %.0f | %.1f |", sc.label, s.ReqPerSec, s.ProxyCPUus)
		for _, r := range refs {
			fmt.Fprintf(w, " %s | %s |", f("%.2f", medianPairRatio(rounds, sc.name, r.name, reqPerSec)),
				f("%.2f", medianPairRatio(rounds, sc.name, r.name, proxyCPU)))
		}
		if !s.ok() {
			fmt.Fprintf(w, " FAIL: %s |", s.Problem)
		}
		fmt.Fprintln(w)
	}
}

const ingressHead = "| scenario | req/s | ÷ no auth | ×o2p | p50 ms | p99 ms | nginx µs/req | auth µs/req | total µs/req | o2p total ÷ this | redis µs/req | new upstream conns | other CPU % | upstream got / wrk done |\n" +
	"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"

// printIngress prints the ingress rows: nginx with no auth, nginx with
// auth_request to oauth2-proxy and to Gatehouse; CPU per request of nginx,
// of the auth service and both together.
func printIngress(w io.Writer, title string, scs []scenario, rounds []map[string]sample, sum *summary) {
	rows, samples, ok := rowsOf(scs, rounds, sum, "ingress-none", "ingress-o2p", "ingress-gh")
	if !ok {
		return
	}
	fmt.Fprintf(w, "\n#### %s\n\n%s", title, ingressHead)
	for i, sc := range rows {
		s := samples[i]
		none, peer, cpuPeer := math.NaN(), math.NaN(), math.NaN()
		if sc.name != "ingress-none" {
			none = medianPairRatio(rounds, sc.name, "ingress-none", reqPerSec)
		}
		if sc.peer != "" {
			peer = medianPairRatio(rounds, sc.name, sc.peer, reqPerSec)
			cpuPeer = medianPairRatio(rounds, sc.peer, sc.name, totalCPU)
		}
		auth := math.NaN()
		if sc.auth != nil {
			auth = s.AuthCPUus
		}
		check := fmt.Sprintf("%d / %d", s.UpstreamReqs, s.Requests)
		if !s.ok() {
			check += " FAIL: " + s.Problem
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.2f | %.2f | %.1f | %s | %.1f | %s | %.1f | %d | %.0f | %s |\n",
			sc.label, s.ReqPerSec, f("%.2f", none), f("%.2f", peer), s.P50ms, s.P99ms, s.ProxyCPUus, f("%.1f", auth),
			totalCPU(s), f("%.1f", cpuPeer), s.RedisCPUus, s.NewConns, s.OtherCPUpct, check)
	}
}

// targets12 lists issue 12's targets: the medians of same-run ratios, and
// the connection figures when they were measured.
func targets12(sum summary, c *connsResult, sl *slowResult) []target {
	r := sum.rounds
	ts := []target{
		{what: "proxied request, Gatehouse ÷ nginx-ref req/s", value: medianPairRatio(r, "gh-proxy", "nginx-ref", reqPerSec), want: 0.5},
		{what: "proxied request, Gatehouse ÷ rp-ref req/s (never below the minimal ReverseProxy)", value: medianPairRatio(r, "gh-proxy", "rp-ref", reqPerSec), want: 1},
		{what: "/oauth2/auth, Gatehouse ÷ direct upstream req/s", value: medianPairRatio(r, "gh-auth", "direct", reqPerSec), want: 0.8},
		{what: "ingress, nginx + Gatehouse ÷ nginx with no auth req/s", value: medianPairRatio(r, "ingress-gh", "ingress-none", reqPerSec), want: 0.6},
		{what: "ingress, nginx + Gatehouse ÷ nginx + oauth2-proxy req/s", value: medianPairRatio(r, "ingress-gh", "ingress-o2p", reqPerSec), want: 3},
	}
	idle := math.NaN()
	if c != nil {
		idle = c.RSSPerConnKB
	}
	ts = append(ts, target{what: "idle keep-alive connections, Gatehouse RSS KB per connection", value: idle, want: 10, atMost: true})
	p99 := math.NaN()
	if sl != nil {
		p99 = sl.p99Ratio()
	}
	ts = append(ts, target{what: "slow clients: other clients' p99 with them ÷ without (\"never stall\")", value: p99, want: math.NaN()})
	return ts
}

func printTargets12(w io.Writer, ts []target) {
	fmt.Fprintf(w, "\n### Issue 12 targets (on the medians of same-round ratios)\n\n")
	for _, t := range ts {
		fmt.Fprintln(w, t.String())
	}
}
