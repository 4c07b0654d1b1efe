package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// The chart's Grafana dashboard and PrometheusRule alerts are tested for
// what an on-call engineer relies on: every query parses (promtool, the
// Prometheus project's own checker), every metric it reads is one Gatehouse
// really exports (taken from a running Gatehouse, not from a list), and each
// alert fires on the failure it names and stays quiet on healthy traffic
// (promtool test rules).

// observabilityValues turns on the dashboard and the alerts over the HA
// example, with a label on every alert and one alert switched off.
func observabilityValues(t testing.TB) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "observability.yaml")
	if err := os.WriteFile(p, []byte(`grafanaDashboard:
  enabled: true
  annotations:
    grafana_folder: Gatehouse
prometheusRule:
  enabled: true
  labels:
    release: kube-prometheus-stack
  alertLabels:
    team: platform
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{haValues(t), p}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "..."}
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X int `json:"x"`
		W int `json:"w"`
	} `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// renderedDashboard returns the dashboard the chart ships, from its
// ConfigMap, after checking it is the file in the chart, byte for byte.
func renderedDashboard(t *testing.T, r rendered) dashboard {
	t.Helper()
	var cm struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	r.named(t, "ConfigMap", fullname+"-dashboard", &cm)
	if cm.Metadata.Labels["grafana_dashboard"] != "1" || cm.Metadata.Annotations["grafana_folder"] != "Gatehouse" {
		t.Errorf("dashboard ConfigMap labels %v, annotations %v; want the sidecar's grafana_dashboard: \"1\" and the values' folder",
			cm.Metadata.Labels, cm.Metadata.Annotations)
	}
	file, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "gatehouse.json"))
	if err != nil {
		t.Fatal(err)
	}
	text := cm.Data["gatehouse.json"]
	if text != strings.TrimRight(string(file), "\n") {
		t.Errorf("the ConfigMap's gatehouse.json differs from dashboards/gatehouse.json")
	}
	var d dashboard
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return d
}

// dashboardQueries checks the dashboard's shape and returns every query in
// it: each panel's targets and each template variable's query.
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q; want both", d.UID, d.Title)
	}
	var qs []query
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		// label_values(selector, label) lists a label of a series; the
		// selector is the PromQL to check.
		m := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`).FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable $%s query %q; want label_values(<selector>, <label>)", v.Name, q)
			continue
		}
		qs = append(qs, query{"variable $" + v.Name, m[1]})
	}
	for _, want := range []string{"datasource", "namespace", "job"} {
		if !vars[want] {
			t.Errorf("dashboard has no $%s variable", want)
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q runs past the 24-column grid", p.Title)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the $datasource variable", p.Title)
			}
			for i, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %d has no expression", p.Title, i)
				}
				qs = append(qs, query{fmt.Sprintf("panel %q", p.Title), tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return qs
}

// ruleGroups is a Prometheus rule file (and a PrometheusRule's spec).
type ruleGroups struct {
	Groups []struct {
		Name  string           `yaml:"name"`
		Rules []map[string]any `yaml:"rules"`
	} `yaml:"groups"`
}

// renderedRules returns the PrometheusRule's groups.
func renderedRules(t *testing.T, r rendered) ruleGroups {
	t.Helper()
	var pr struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec ruleGroups `yaml:"spec"`
	}
	r.one(t, "PrometheusRule", &pr)
	if pr.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v; want the values' release label", pr.Metadata.Labels)
	}
	return pr.Spec
}

// promtool finds the Prometheus project's checker (Debian's prometheus
// package), failing the test when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: `make test` installs it (scripts/install-deps.sh, Debian package prometheus)")
	}
	return p
}

// runPromtool runs promtool in dir and fails the test with its output.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// grafanaVars replaces the dashboard's variables with values Prometheus
// would see after Grafana's substitution.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$namespace", namespace,
	"$job", fullname,
	"$route", ".*",
)

// TestDashboardQueriesParse: every query of the dashboard, variables
// substituted as Grafana would, is valid PromQL to promtool.
func TestDashboardQueriesParse(t *testing.T) {
	d := renderedDashboard(t, mustTemplate(t, observabilityValues(t)))
	qs := dashboardQueries(t, d)
	rules := map[string]any{}
	var list []map[string]string
	for i, q := range qs {
		expr := grafanaVars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: %q uses a variable the dashboard does not define", q.where, q.expr)
		}
		list = append(list, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": expr})
	}
	rules["groups"] = []map[string]any{{"name": "dashboard", "rules": list}}
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "dashboard-rules.yaml"), rules)
	out := runPromtool(t, dir, "check", "rules", "dashboard-rules.yaml")
	if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(qs))) {
		t.Errorf("promtool check rules:\n%s\nwant all %d queries accepted", out, len(qs))
	}
}

// TestAlertRules: the rules parse and their templates render (promtool check
// rules), and each alert fires on the failure it is about and not on
// healthy traffic (promtool test rules with testdata/alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	groups := renderedRules(t, mustTemplate(t, observabilityValues(t)))
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "rules.yaml"), groups)
	runPromtool(t, dir, "check", "rules", "rules.yaml")

	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name, _ := r["alert"].(string)
			names = append(names, name)
			labels, _ := r["labels"].(map[string]any)
			if labels["team"] != "platform" || (labels["severity"] != "critical" && labels["severity"] != "warning") {
				t.Errorf("alert %s labels %v; want a severity and the values' team", name, labels)
			}
			ann, _ := r["annotations"].(map[string]any)
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if ann[k] == nil {
					t.Errorf("alert %s has no %s", name, k)
				}
			}
			// Every alert has a runbook section in docs/operations.md.
			if u, _ := ann["runbook_url"].(string); !strings.HasSuffix(u, "#"+strings.ToLower(name)) {
				t.Errorf("alert %s runbook_url %q; want docs/operations.md#%s", name, u, strings.ToLower(name))
			}
			// promtool test rules compares annotations too; what is tested
			// there is when alerts fire, with which labels.
			delete(r, "annotations")
		}
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "\n### "+n+"\n") {
			t.Errorf("docs/operations.md has no section ### %s (its runbook_url's anchor)", n)
		}
	}

	writeYAML(t, filepath.Join(dir, "rules.yaml"), groups)
	test, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Every alert must be exercised by the unit tests.
	for _, n := range names {
		if !strings.Contains(string(test), "alertname: "+n+"\n") {
			t.Errorf("testdata/alerts_test.yaml never checks %s", n)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), test, 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "test", "rules", "alerts_test.yaml")

	// An alert switched off is left out.
	off := renderedRules(t, mustTemplate(t, observabilityValues(t), "--set", "prometheusRule.disabled.GatehouseHighLatency=true"))
	for _, g := range off.Groups {
		for _, r := range g.Rules {
			if r["alert"] == "GatehouseHighLatency" {
				t.Error("GatehouseHighLatency rendered with prometheusRule.disabled.GatehouseHighLatency=true")
			}
		}
	}
}

// TestObservabilityQueriesUseExportedMetrics: every metric a dashboard panel,
// a dashboard variable or an alert reads is one Gatehouse exports. The
// exported names come from a running Gatehouse (real provider, real Redis)
// after a sign-in and a refusal: its /metrics, plus every series its
// registry describes, so a family that has seen no event yet counts too.
func TestObservabilityQueriesUseExportedMetrics(t *testing.T) {
	r := mustTemplate(t, observabilityValues(t))
	qs := dashboardQueries(t, renderedDashboard(t, r))
	for _, g := range renderedRules(t, r).Groups {
		for _, rule := range g.Rules {
			expr, _ := rule["expr"].(string)
			qs = append(qs, query{fmt.Sprintf("alert %v", rule["alert"]), expr})
		}
	}

	exported, types := exportedMetrics(t)
	known := func(name string) bool {
		if exported[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && (types[base] == "histogram" || types[base] == "summary") {
				return true
			}
		}
		// up is the series Prometheus itself writes for every scrape.
		return name == "up"
	}
	for _, q := range qs {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %q", q.where, err, q.expr)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q reads no metric", q.where, q.expr)
		}
		for _, n := range names {
			if !known(n) {
				t.Errorf("%s reads %s, which Gatehouse does not export", q.where, n)
			}
		}
	}
}

// exportedMetrics starts Gatehouse with Redis, signs in, gets refused once,
// and returns the metric names it exports (scraped, and described by its
// registry) and the type of each scraped family.
func exportedMetrics(t *testing.T) (map[string]bool, map[string]string) {
	t.Helper()
	e := e2etest.Start(t, e2etest.Options{Store: "redis"})
	browser := e.Browser()
	if resp, body := e.Login(browser, "/dashboard", "alice", "alice-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %d: %.200s", resp.StatusCode, body)
	}
	// An API call without a session: refused (401), a decision with a reason.
	req, _ := http.NewRequest("GET", e.URL+"/api/items", nil)
	req.Header.Set("Accept", "application/json")
	if resp := e.Do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API call without a session: %d; want 401", resp.StatusCode)
	} else {
		resp.Body.Close()
	}

	names, types := map[string]bool{}, map[string]string{}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// Every family in the text format has its "# TYPE name type" line.
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]], types[f[2]] = true, f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gatehouse_http_requests_total", "gatehouse_build_info", "process_start_time_seconds"} {
		if !names[want] {
			t.Fatalf("/metrics lacks %s; the scrape is not Gatehouse's", want)
		}
	}

	descs := make(chan *prometheus.Desc)
	go func() { e.App.Registry().Describe(descs); close(descs) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names, types
}

// promqlAggregations are PromQL's aggregation operators, which may stand
// apart from their parentheses (sum by (x) (...)).
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// promqlKeywords are PromQL's other words that are never metric names.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
}

// metricNames returns the metric names a PromQL expression reads: the
// identifiers that are neither functions, aggregations, keywords, label
// names (inside {...} or after by, without, on, ignoring, group_left and
// group_right) nor parts of strings, numbers and durations.
func metricNames(expr string) ([]string, error) {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	// skipString returns the index after the string literal starting at
	// i; "..." and '...' may escape their quote with a backslash.
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	// skipTo returns the index after the bracket closing the one at i,
	// stepping over strings.
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for i < len(expr) {
			switch c := expr[i]; c {
			case '"', '\'', '`':
				j, err := skipString(i)
				if err != nil {
					return 0, err
				}
				i = j
				continue
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, fmt.Errorf("unclosed %q", open)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{' || c == '[':
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			j, err := skipTo(i, c, close)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.' || (expr[i] == '+' || expr[i] == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word, next := expr[i:j], skipSpace(j)
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				// A label list may follow: labels, not metrics.
				if next < len(expr) && expr[next] == '(' {
					k, err := skipTo(next, '(', ')')
					if err != nil {
						return nil, err
					}
					j = k
				}
			case word == "offset":
				// offset 5m: the duration is not a name.
				k := next
				for k < len(expr) && (isPart(expr[k]) || expr[k] == '-') {
					k++
				}
				j = k
			case promqlAggregations[word] || promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// A function call.
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum(rate(gatehouse_http_requests_total{job="a", code=~"5.."}[5m])) / sum(rate(gatehouse_http_requests_total{job="a"}[5m])) > 0.05`,
			[]string{"gatehouse_http_requests_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(x_seconds_bucket{route=~"$route"}[$__rate_interval])))`, []string{"x_seconds_bucket"}},
		{`sum by (reason) (rate(a_total{decision!~"allow|x"}[10m])) / ignoring (reason) group_left sum(rate(b_total[10m])) > 0.2`,
			[]string{"a_total", "b_total"}},
		{`absent(up{job="j"} == 1)`, []string{"up"}},
		{`changes(process_start_time_seconds{pod="p"}[30m]) >= 3`, []string{"process_start_time_seconds"}},
		{`count by (version) (gatehouse_build_info)`, []string{"gatehouse_build_info"}},
		{`a offset 5m and on (instance) b unless bool c`, []string{"a", "b", "c"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`m{l="}{["} + 1e-3 * n{l='\''}`, []string{"m", "n"}},
		{`sum without (pod) (m) or vector(0)`, []string{"m"}},
		{`max_over_time(m[1h:5m]) * on () group_right (x) n`, []string{"m", "n"}},
		{`topk(5, m)`, []string{"m"}},
		{`0.5 * 2`, nil},
	}
	for _, tt := range tests {
		got, err := metricNames(tt.expr)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
	for _, bad := range []string{`m{l="x}`, `rate(m[5m)`, `"open`} {
		if got, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q) = %q; want an error", bad, got)
		}
	}
}
