package app

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// providerMetrics times and counts Gatehouse's calls to the identity
// provider (discovery, keys, code exchange, refresh, userinfo,
// introspection), by endpoint path: the dashboard's provider panel and the
// alerts on a failing provider read them.
type providerMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec

	mu    sync.Mutex
	paths map[string]bool // endpoints seen, at most maxProviderPaths
}

// maxProviderPaths bounds the endpoint label: a provider has a handful of
// endpoints; anything past this many is "other".
const maxProviderPaths = 16

func newProviderMetrics(reg prometheus.Registerer) *providerMetrics {
	m := &providerMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_provider_request_duration_seconds",
			Help:    "Calls to the identity provider, by endpoint path and status code (\"error\" when there was no answer).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_provider_request_errors_total",
			Help: "Calls to the identity provider that got no answer or a 5xx, by endpoint path.",
		}, []string{"endpoint"}),
		paths: map[string]bool{},
	}
	reg.MustRegister(m.duration, m.errors)
	return m
}

func (m *providerMetrics) endpoint(path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paths[path] {
		return path
	}
	if len(m.paths) >= maxProviderPaths {
		return "other"
	}
	m.paths[path] = true
	return path
}

// wrap returns rt (nil = http.DefaultTransport) instrumented.
func (m *providerMetrics) wrap(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return providerTransport{rt, m}
}

type providerTransport struct {
	rt http.RoundTripper
	m  *providerMetrics
}

func (t providerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	ep, code := t.m.endpoint(r.URL.Path), "error"
	if err == nil {
		code = statusCode(resp.StatusCode)
	}
	t.m.duration.WithLabelValues(ep, code).Observe(time.Since(start).Seconds())
	if err != nil || resp.StatusCode >= 500 {
		t.m.errors.WithLabelValues(ep).Inc()
	}
	return resp, err
}

func statusCode(c int) string {
	if c < 100 || c > 999 {
		return "other"
	}
	return string([]byte{byte('0' + c/100), byte('0' + c/10%10), byte('0' + c%10)})
}
