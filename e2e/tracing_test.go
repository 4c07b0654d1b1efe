package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// collector is an OTLP/HTTP traces receiver: it decodes what the exporter
// sends, as an OpenTelemetry Collector would, and signals each batch.
type collector struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []*tracepb.Span
	service string
	got     chan struct{}
}

func newCollector(t *testing.T) *collector {
	c := &collector{got: make(chan struct{}, 64)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					c.service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		c.got <- struct{}{}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// span returns the named span once it has arrived, failing after a deadline.
func (c *collector) span(t *testing.T, name string) *tracepb.Span {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		for _, s := range c.spans {
			if s.Name == name {
				c.mu.Unlock()
				return s
			}
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("no span %q reached the collector", name)
		}
	}
}

// TestTracingExportsOverOTLP: with tracing.endpoint set, a signed-in request
// is exported to an OTLP/HTTP collector as a server span with children for
// the session store and minting, in the trace a trusted proxy started, and
// the upstream receives the context; provider calls are timed in /metrics.
func TestTracingExportsOverOTLP(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // export batches at once
	col := newCollector(t)
	e := e2etest.Start(t, e2etest.Options{Env: map[string]string{
		"GATEHOUSE_TRACING_ENDPOINT":     col.URL + "/v1/traces",
		"GATEHOUSE_TRACING_SERVICE_NAME": "gatehouse-e2e",
		"GATEHOUSE_TRUSTED_PROXIES":      "127.0.0.1/32",
	}})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", e.URL+"/traced", nil)
	req.Header.Set("Traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	e2etest.ReadBody(t, resp)

	// The request span of /traced, in the caller's trace, and its children.
	var server *tracepb.Span
	deadline := time.After(30 * time.Second)
	for server == nil {
		col.mu.Lock()
		for _, s := range col.spans {
			if s.Name == "gatehouse default" && strings.EqualFold(hexID(s.TraceId), caller) {
				server = s
			}
		}
		col.mu.Unlock()
		if server == nil {
			select {
			case <-col.got:
			case <-deadline:
				t.Fatal("no request span joined the trusted caller's trace")
			}
		}
	}
	for _, child := range []string{"session.load", "token.mint"} {
		found := false
		for range 2 { // children end, and may be exported, before their parent
			col.mu.Lock()
			for _, s := range col.spans {
				found = found || s.Name == child && string(s.ParentSpanId) == string(server.SpanId)
			}
			col.mu.Unlock()
			if found {
				break
			}
			col.span(t, child)
		}
		if !found {
			t.Errorf("no %s span is a child of the request span", child)
		}
	}
	col.mu.Lock()
	service := col.service
	col.mu.Unlock()
	if service != "gatehouse-e2e" {
		t.Errorf("service.name = %q; want gatehouse-e2e", service)
	}
	if up := e.Up.LastRequest().Header.Get("Traceparent"); !strings.Contains(up, caller) {
		t.Errorf("upstream traceparent %q; want the caller's trace %s", up, caller)
	}

	resp, err = http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := e2etest.ReadBody(t, resp)
	if !regexp.MustCompile(`gatehouse_provider_request_duration_seconds_count\{code="200",endpoint="[^"]*token[^"]*"\} 1`).MatchString(body) {
		t.Errorf("/metrics does not time the code exchange at the provider's token endpoint:\n%s", grep(body, "gatehouse_provider"))
	}
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
