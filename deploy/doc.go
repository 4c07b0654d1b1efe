// Package deploy tests what ships Gatehouse to production: the Dockerfile's
// build produces a static, version-stamped binary, and the Helm chart in
// helm/gatehouse lints, renders, mounts its secrets read-only and hands the
// binary a configuration that passes `gatehouse config check`.
//
// The tests build helm v3.22.0 from the Go module proxy once and cache it
// under the user cache directory, so the first run needs network access to
// proxy.golang.org.
package deploy
