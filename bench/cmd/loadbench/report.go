package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// ratios of one sample to the direct upstream and to its oauth2-proxy peer
// in the same round; NaN where there is nothing to compare with.
type ratios struct {
	xDirect float64 // req/s ÷ direct req/s
	xPeer   float64 // req/s ÷ peer req/s
	cpuPeer float64 // peer CPU/req ÷ this CPU/req
	p99Peer float64 // this p99 ÷ peer p99
}

func ratiosOf(sc scenario, s sample, round map[string]sample) ratios {
	r := ratios{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	if !s.ok() {
		return r
	}
	if d, ok := round["direct"]; ok && d.ok() && sc.name != "direct" {
		r.xDirect = s.ReqPerSec / d.ReqPerSec
	}
	if p, ok := round[sc.peer]; ok && p.ok() && sc.peer != "" {
		r.xPeer = s.ReqPerSec / p.ReqPerSec
		if s.ProxyCPUus > 0 {
			r.cpuPeer = p.ProxyCPUus / s.ProxyCPUus
		}
		if s.P99ms > 0 {
			r.p99Peer = s.P99ms / p.P99ms
		}
	}
	return r
}

// median of the non-NaN values; NaN if there are none.
func median(xs []float64) float64 {
	v := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func f(format string, x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf(format, x)
}

const tableHead = "| scenario | req/s | ×direct | ×o2p | p50 ms | p99 ms | p99 ÷o2p | proxy CPU µs/req | o2p CPU ÷ this | redis µs/req | upstream µs/req | new upstream conns | RSS MB | peak RSS MB | other CPU % | upstream got / wrk done |\n" +
	"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"

// printRound prints one round's table.
func printRound(w io.Writer, scs []scenario, round map[string]sample, n int) {
	fmt.Fprintf(w, "\n### Round %d\n\n%s", n, tableHead)
	for _, sc := range scs {
		s, ok := round[sc.name]
		if !ok || sc.ingress {
			continue
		}
		r := ratiosOf(sc, s, round)
		row(w, sc, s, r)
	}
	rounds := []map[string]sample{round}
	printReferences(w, fmt.Sprintf("Round %d: Gatehouse against the references", n), scs, rounds, nil)
	printIngress(w, fmt.Sprintf("Round %d: the ingress deployment", n), scs, rounds, nil)
}

func row(w io.Writer, sc scenario, s sample, r ratios) {
	cpu := "–"
	if sc.target != nil {
		cpu = f("%.1f", s.ProxyCPUus)
	}
	check := fmt.Sprintf("%d / %d", s.UpstreamReqs, s.Requests)
	if !s.ok() {
		check += " FAIL: " + s.Problem
	}
	fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %d | %.1f | %.1f | %.0f | %s |\n",
		sc.label, s.ReqPerSec, f("%.2f", r.xDirect), f("%.2f", r.xPeer), s.P50ms, s.P99ms, f("%.2f", r.p99Peer),
		cpu, f("%.1f", r.cpuPeer), f("%.1f", s.RedisCPUus), f("%.1f", s.HarnessCPUus), s.NewConns, s.RSSMaxMB, s.PeakRSSMB,
		s.OtherCPUpct, check)
}

// summary holds the medians of every scenario over the rounds it passed.
type summary struct {
	med    map[string]sample
	ratios map[string]ratios
	passed map[string]int
	rounds []map[string]sample // every round, for ratios between any two rows
}

func summarize(scs []scenario, rounds []map[string]sample) summary {
	sum := summary{med: map[string]sample{}, ratios: map[string]ratios{}, passed: map[string]int{}, rounds: rounds}
	for _, sc := range scs {
		var col [16][]float64
		var conns []float64
		for _, round := range rounds {
			s, ok := round[sc.name]
			if !ok || !s.ok() {
				continue
			}
			r := ratiosOf(sc, s, round)
			for i, v := range []float64{s.ReqPerSec, s.P50ms, s.P99ms, s.ProxyCPUus, s.RedisCPUus, s.HarnessCPUus,
				s.RSSMaxMB, s.PeakRSSMB, float64(s.Requests), float64(s.UpstreamReqs), r.xDirect, r.xPeer, r.cpuPeer, r.p99Peer,
				s.OtherCPUpct, s.AuthCPUus} {
				col[i] = append(col[i], v)
			}
			conns = append(conns, float64(s.NewConns))
		}
		sum.passed[sc.name] = len(col[0])
		if len(col[0]) == 0 {
			continue
		}
		sum.med[sc.name] = sample{
			Scenario: sc.name, ReqPerSec: median(col[0]), P50ms: median(col[1]), P99ms: median(col[2]),
			ProxyCPUus: median(col[3]), RedisCPUus: median(col[4]), HarnessCPUus: median(col[5]),
			RSSMaxMB: median(col[6]), PeakRSSMB: median(col[7]), Requests: int64(median(col[8])),
			UpstreamReqs: int64(median(col[9])), NewConns: int64(median(conns)), OtherCPUpct: median(col[14]),
			AuthCPUus: median(col[15]),
		}
		sum.ratios[sc.name] = ratios{median(col[10]), median(col[11]), median(col[12]), median(col[13])}
	}
	return sum
}

// printMedians prints the medians table; ratios are medians of the per-round
// ratios, so each compares runs of the same round.
func printMedians(w io.Writer, scs []scenario, sum summary, rounds int) {
	fmt.Fprintf(w, "\n### Medians over %d rounds (ratios: medians of the per-round ratios)\n\n%s", rounds, tableHead)
	for _, sc := range scs {
		if sc.ingress {
			continue
		}
		s, ok := sum.med[sc.name]
		if !ok {
			fmt.Fprintf(w, "| %s | no passing round |\n", sc.label)
			continue
		}
		if p := sum.passed[sc.name]; p < rounds {
			s.Problem = fmt.Sprintf("only %d of %d rounds passed", p, rounds)
		}
		row(w, sc, s, sum.ratios[sc.name])
	}
	printReferences(w, fmt.Sprintf("Medians over %d rounds: Gatehouse against the references", rounds), scs, sum.rounds, &sum)
	printIngress(w, fmt.Sprintf("Medians over %d rounds: the ingress deployment", rounds), scs, sum.rounds, &sum)
}

// target is one of issue 5's goals, judged on the medians.
type target struct {
	what   string
	value  float64
	want   float64
	atMost bool // the value must be at most want, not at least
}

func (t target) String() string {
	if math.IsNaN(t.value) {
		return fmt.Sprintf("- %s: not measured", t.what)
	}
	if math.IsNaN(t.want) {
		return fmt.Sprintf("- %s: %.2f (no numeric target; judge it against the spread between rounds)", t.what, t.value)
	}
	met := t.value >= t.want
	cmp := "≥"
	if t.atMost {
		met, cmp = t.value <= t.want, "≤"
	}
	verdict := "met"
	if !met {
		verdict = fmt.Sprintf("MISSED by %.0f %%", 100*math.Abs(t.value-t.want)/t.want)
	}
	return fmt.Sprintf("- %s: %.2f (target %s %.2f) — %s", t.what, t.value, cmp, t.want, verdict)
}

// targets lists issue 5's targets against the medians. peakGH and peakO2P are
// the proxies' VmHWM at the end of the rounds; eq are the equal-load runs,
// whose p99 ratios are listed next to the saturated ones.
func targets(sum summary, peakGH, peakO2P float64, eq []sample) []target {
	get := func(name string) ratios {
		if r, ok := sum.ratios[name]; ok {
			return r
		}
		return ratios{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	}
	px, au := get("gh-proxy"), get("gh-auth")
	return []target{
		{what: "proxied request, Gatehouse ÷ oauth2-proxy req/s", value: px.xPeer, want: 5},
		{what: "proxied request, Gatehouse ÷ direct upstream req/s", value: px.xDirect, want: 0.4},
		{what: "/oauth2/auth, Gatehouse ÷ oauth2-proxy req/s", value: au.xPeer, want: 3},
		{what: "/oauth2/auth, Gatehouse ÷ direct upstream req/s", value: au.xDirect, want: 0.7},
		{what: "proxied request, oauth2-proxy CPU/req ÷ Gatehouse CPU/req", value: px.cpuPeer, want: 4},
		{what: "/oauth2/auth, oauth2-proxy CPU/req ÷ Gatehouse CPU/req", value: au.cpuPeer, want: 4},
		{what: "proxied request, Gatehouse p99 ÷ oauth2-proxy p99", value: px.p99Peer, want: 1, atMost: true},
		{what: "/oauth2/auth, Gatehouse p99 ÷ oauth2-proxy p99", value: au.p99Peer, want: 1, atMost: true},
		{what: "proxied request at equal load, Gatehouse p99 ÷ oauth2-proxy p99", value: eqRatio(eq, "gh-proxy", "o2p-proxy"), want: 1, atMost: true},
		{what: "/oauth2/auth at equal load, Gatehouse p99 ÷ oauth2-proxy p99", value: eqRatio(eq, "gh-auth", "o2p-auth"), want: 1, atMost: true},
		{what: "peak RSS, Gatehouse ÷ oauth2-proxy", value: peakGH / peakO2P, want: 1, atMost: true},
	}
}

// eqRatio is gh's p99 ÷ o2p's in the equal-load runs; NaN if either is
// missing or failed its checks.
func eqRatio(eq []sample, gh, o2p string) float64 {
	var a, b *sample
	for i := range eq {
		switch eq[i].Scenario {
		case gh:
			a = &eq[i]
		case o2p:
			b = &eq[i]
		}
	}
	if a == nil || b == nil || !a.ok() || !b.ok() || b.P99ms <= 0 {
		return math.NaN()
	}
	return a.P99ms / b.P99ms
}

func printTargets(w io.Writer, ts []target) {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(w, "\n### Issue 5 targets (on the medians; equal-load lines on their single runs)\n\n%s", b.String())
}
