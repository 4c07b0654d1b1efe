# syntax=docker/dockerfile:1
#
# Gatehouse container image: a static binary on distroless, running as the
# non-root user 65532 with nothing to write, so it runs with a read-only root
# filesystem. `make docker` builds it with VERSION stamped from git.
#
# Multi-arch: the build stage runs on the builder's own platform and
# cross-compiles for the target's (no emulation), so
#   docker buildx build --platform linux/amd64,linux/arm64 .
# builds both images natively fast.
#
# deploy/dockerfile_test.go runs this file's `go build` line exactly as written,
# for the machine's architecture and for arm64, and asserts the results are
# static, so keep that RUN a single command.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit from --platform (linux and amd64, arm64, ...).
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS="${TARGETOS}" GOARCH="${TARGETARCH}" go build -trimpath -ldflags "-s -w -X github.com/gatehouse/gatehouse/cli.Version=${VERSION}" -o /out/gatehouse .

# distroless/static: CA certificates, tzdata and /etc/passwd, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /gatehouse
USER 65532:65532
# 4180: the proxy and /oauth2/*; 9180: /metrics, /healthz, /readyz.
EXPOSE 4180 9180
# Probes http://127.0.0.1:9180/healthz (GATEHOUSE_METRICS_LISTEN moves it).
# Kubernetes ignores HEALTHCHECK: the Helm chart sets its own probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/gatehouse", "healthcheck"]
ENTRYPOINT ["/gatehouse"]
CMD ["serve", "--config", "/etc/gatehouse/config.yaml"]
