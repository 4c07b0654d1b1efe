// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables (and the configuration's tracing keys), exporting
// spans over OTLP/HTTP. Without an endpoint it is off, and then Setup
// returns a nil provider: callers skip span work entirely, so tracing costs
// nothing on the hot path unless it is configured.
package tracing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Config is the tracing part of Gatehouse's configuration. Every field is
// optional: the OTEL_* environment variables are the standard way.
type Config struct {
	// Endpoint is the OTLP/HTTP traces endpoint (e.g.
	// http://otel-collector:4318/v1/traces). Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// or OTEL_EXPORTER_OTLP_ENDPOINT; none of them = tracing off.
	Endpoint string
	// SampleRatio of new traces recorded (0..1); traces a trusted peer
	// started follow its decision. Zero: OTEL_TRACES_SAMPLER_ARG, else 1.
	SampleRatio float64
	// ServiceName; empty: OTEL_SERVICE_NAME, else "gatehouse".
	ServiceName string
	// Version is the service.version resource attribute.
	Version string
}

// Setup returns the tracer provider, or nil when tracing is off (no
// endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none), and a
// function that flushes and stops it.
func Setup(ctx context.Context, c Config, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return nil, off, nil
	}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
	if endpoint == "" {
		if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
			endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	if endpoint == "" {
		return nil, off, nil
	}
	ratio := c.SampleRatio
	if ratio == 0 {
		ratio = 1
		if v := getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return nil, off, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q: want a number from 0 to 1", v)
			}
			ratio = f
		}
	}
	name := c.ServiceName
	if name == "" {
		name = getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "gatehouse"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, off, fmt.Errorf("tracing: OTLP exporter for %s: %w", endpoint, err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name), semconv.ServiceVersion(c.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return tp, tp.Shutdown, nil
}
