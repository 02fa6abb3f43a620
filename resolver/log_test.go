package resolver

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// syncBuffer is a bytes.Buffer safe for the resolver's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A query no upstream answers is logged with its name and the error; each
// failed attempt at Debug with the upstream.
func TestForwardingFailureIsLogged(t *testing.T) {
	dead, _ := blackHole(t)
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, addr := startResolver(t, Config{Upstreams: upstreams(dead), Timeout: 100 * time.Millisecond, Logger: log.With("sandbox", "sb1")})
	if resp := query(t, addr, "udp", "lost.example.", dns.TypeA, 0); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("answer %v, want SERVFAIL", resp)
	}
	got := out.String()
	for _, want := range []string{
		`level=DEBUG msg="dns forwarding attempt failed" sandbox=sb1 name=lost.example. upstream=` + dead.String() + ` transport=udp err=`,
		`level=WARN msg="dns forwarding failed: no upstream answered" sandbox=sb1 name=lost.example. transport=udp upstreams=1 err=`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}
