package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	inflight prometheus.Gauge
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	store    *prometheus.HistogramVec
	storeErr *prometheus.CounterVec
	refreshs *prometheus.CounterVec
	decides  *prometheus.CounterVec
	revokes  *prometheus.CounterVec
}

// NewMetrics registers the proxy's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "Requests handled, by route (or Gatehouse endpoint), method and status code.",
		}, []string{"route", "method", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time to the end of the response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total",
			Help: "Login attempts by outcome.",
		}, []string{"outcome"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_session_store_duration_seconds",
			Help:    "Session store operation latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
		storeErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_session_store_errors_total",
			Help: "Session store operations that failed (not counting 'not found').",
		}, []string{"op"}),
	}
	m.refreshs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_session_refreshes_total",
		Help: "Background refreshes of sessions' provider tokens, by outcome (success, revoked, skipped, deferred: held back by the concurrency cap or a provider backoff, error).",
	}, []string{"outcome"})
	m.decides = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_authz_decisions_total",
		Help: "Authorization decisions, by route, decision (allow, unauthenticated, invalid_token, forbidden, cross_origin, unavailable, bad_request, untrusted_peer, no_route, error) and the reason that decided.",
	}, []string{"route", "decision", "reason"})
	m.revokes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_sessions_revoked_total",
		Help: "Sessions ended before their time, by what ended them (sign_out, sign_out_everywhere, backchannel_logout, provider_revoked).",
	}, []string{"source"})
	reg.MustRegister(m.requests, m.inflight, m.duration, m.logins, m.store, m.storeErr, m.refreshs, m.decides, m.revokes)
	for _, src := range []string{"sign_out", "sign_out_everywhere", "backchannel_logout", "provider_revoked"} {
		m.revokes.WithLabelValues(src)
	}
	for _, o := range []string{"success", "revoked", "skipped", "deferred", "error"} {
		m.refreshs.WithLabelValues(o)
	}
	for _, o := range []string{"success", "provider_error", "invalid_state", "exchange_failed", "forbidden", "store_error"} {
		m.logins.WithLabelValues(o)
	}
	return m
}

func (m *Metrics) inFlight(delta float64) {
	if m != nil {
		m.inflight.Add(delta)
	}
}

func (m *Metrics) request(route, method string, code int, seconds float64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, methodLabel(method), codeString(code)).Inc()
	m.duration.WithLabelValues(route).Observe(seconds)
}

func (m *Metrics) decision(route, decision, reason string) {
	if m != nil {
		m.decides.WithLabelValues(route, decision, reason).Inc()
	}
}

func (m *Metrics) revoked(source string, n int) {
	if m != nil && n > 0 {
		m.revokes.WithLabelValues(source).Add(float64(n))
	}
}

func (m *Metrics) login(outcome string) {
	if m != nil {
		m.logins.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) refresh(outcome string) {
	if m != nil {
		m.refreshs.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) storeOp(op string, seconds float64, failed bool) {
	if m == nil {
		return
	}
	m.store.WithLabelValues(op).Observe(seconds)
	if failed {
		m.storeErr.WithLabelValues(op).Inc()
	}
}

// methodLabel bounds the method label: the standard methods, else "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

var codeStrings = func() (s [600]string) {
	for i := range s {
		s[i] = itoa3(i)
	}
	return
}()

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)})
}

func codeString(code int) string {
	if code >= 0 && code < len(codeStrings) {
		return codeStrings[code]
	}
	return "other"
}
