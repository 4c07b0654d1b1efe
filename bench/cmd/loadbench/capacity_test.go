package main

import (
	"testing"
)

func TestParseMonitorLine(t *testing.T) {
	tests := []struct {
		line, name string
		script, ok bool
	}{
		{`+1700000000.123456 [0 127.0.0.1:5555] "hmget" "gatehouse:s:{ab}" "d" "s"`, "hmget", false, true},
		{`+1700000000.123457 [0 lua] "HSET" "gatehouse:s:{ab}" "s" "x"`, "hset", true, true},
		{`+1700000000.123458 [0 unix:/tmp/r.sock] "evalsha" "abc" "1"`, "evalsha", false, true},
		{`+OK`, "", false, false},
		{`+1700000000.1 [0 127.0.0.1:1] ""`, "", false, false},
	}
	for _, tt := range tests {
		name, script, ok := parseMonitorLine(tt.line)
		if name != tt.name || script != tt.script || ok != tt.ok {
			t.Errorf("parseMonitorLine(%q) = %q, %v, %v; want %q, %v, %v", tt.line, name, script, ok, tt.name, tt.script, tt.ok)
		}
	}
}

func TestCommandStatsDelta(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\ncmdstat_get:calls=10,usec=100,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_cluster|slots:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n")
	after := parseCommandStats("# Commandstats\r\ncmdstat_get:calls=12,usec=130,usec_per_call=10.83,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_cluster|slots:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_zrem:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n")
	d := after.sub(before)
	if len(d) != 2 || d["get"] != [2]int64{2, 30} || d["zrem"] != [2]int64{3, 9} {
		t.Fatalf("delta = %v; want get 2 calls 30 µs, zrem 3 calls 9 µs, nothing else", d)
	}
	if d.usec() != 39 {
		t.Errorf("usec = %d; want 39", d.usec())
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP x\n" +
		`gatehouse_session_refreshes_total{outcome="deferred"} 3` + "\n" +
		`gatehouse_session_refreshes_total{outcome="success"} 12` + "\n"
	v, err := parseMetric(text, `gatehouse_session_refreshes_total{outcome="success"}`)
	if err != nil || v != 12 {
		t.Errorf("parseMetric = %v, %v; want 12", v, err)
	}
	if _, err := parseMetric(text, `gatehouse_session_refreshes_total{outcome="error"}`); err == nil {
		t.Error("a missing sample was found")
	}
}

func TestBreakdown(t *testing.T) {
	got := breakdown(perUnit(map[string]int{"hmget": 20, "evalsha": 5, "publish": 5}, 10))
	if want := "hmget 2, evalsha 0.5, publish 0.5"; got != want {
		t.Errorf("breakdown = %q; want %q", got, want)
	}
	if got := breakdown(nil); got != "none" {
		t.Errorf("breakdown(nil) = %q; want none", got)
	}
}
