package upstream

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// upstreamEnv makes the test binary an upstream server (see TestMain).
const upstreamEnv = "UPSTREAM_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(upstreamEnv) == "1" {
		serveBenchUpstream()
		return
	}
	// http.Transport logs "Unsolicited response received on idle HTTP
	// channel" for the stray bytes the differential test sends on purpose.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// serveBenchUpstream answers "ok" on 127.0.0.1 until stdin closes (the
// benchmark ended), after printing its address.
func serveBenchUpstream() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: time.Minute,
	}
	go srv.Serve(ln)
	io.Copy(io.Discard, os.Stdin)
}
