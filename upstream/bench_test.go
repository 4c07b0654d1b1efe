package upstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRoundTrip is one GET on a reused connection to a local upstream,
// through http.Transport and through Transport: the transport's own cost
// (the upstream's is the same in both).
func BenchmarkRoundTrip(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	for name, rt := range map[string]http.RoundTripper{
		"stdlib":   stdTransport(0, 0),
		"upstream": &Transport{},
	} {
		b.Run(name, func(b *testing.B) {
			defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
			req, _ := http.NewRequest("GET", up.URL+"/page", nil)
			req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 600))
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
