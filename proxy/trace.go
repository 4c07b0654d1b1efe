package proxy

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: one server span per request, child spans around the session
// store, the provider and minting. W3C trace context is believed only from
// trusted proxies (a stranger cannot join or steer our traces) and passed
// to the upstream. When Config.Tracing is nil none of this runs.

var traceContext = propagation.TraceContext{}

// startRequestSpan starts the request's server span, as a child of the
// caller's trace when a trusted peer sent one.
func (s *Server) startRequestSpan(r *http.Request, trusted bool) (*http.Request, trace.Span) {
	ctx := r.Context()
	if trusted {
		ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := s.tracer.Start(ctx, "gatehouse "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
	return r.WithContext(ctx), span
}

func endRequestSpan(span trace.Span, rs *reqState, code int) {
	span.SetName("gatehouse " + rs.route)
	span.SetAttributes(attribute.Int("http.response.status_code", code), attribute.String("gatehouse.route", rs.route))
	if rs.reason != "" {
		span.SetAttributes(attribute.String("gatehouse.decision", rs.decision.String()), attribute.String("gatehouse.reason", rs.reason))
	}
	if code >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// noEnd ends nothing: span's answer when tracing is off.
func noEnd(error) {}

// span starts a child span named name; the returned func ends it, marking
// an error. Off, it returns ctx and noEnd: no allocation.
func (s *Server) span(ctx context.Context, name string) (context.Context, func(error)) {
	if s.tracer == nil {
		return ctx, noEnd
	}
	ctx, sp := s.tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}
}

// injectTrace writes the request's trace context into the upstream's headers.
func (s *Server) injectTrace(ctx context.Context, h http.Header) {
	if s.tracer != nil {
		traceContext.Inject(ctx, propagation.HeaderCarrier(h))
	}
}
