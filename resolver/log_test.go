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

// A forward refused because MaxForwards are in flight is logged at Warn
// with the name and the limit (the client only sees SERVFAIL).
func TestForwardRefusedIsLogged(t *testing.T) {
	release := make(chan struct{})
	slow := startUpstream(t, func(w dns.ResponseWriter, q *dns.Msg) {
		<-release
		answerA("192.0.2.1")(w, q)
	})
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	_, addr := startResolver(t, Config{Upstreams: upstreams(slow.addr), MaxForwards: 1, Logger: log.With("sandbox", "sb1")})
	first := make(chan *dns.Msg, 1)
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("first.example.", dns.TypeA)
		resp, _, _ := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
		first <- resp
	}()
	for slow.queries.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if resp := query(t, addr, "udp", "second.example.", dns.TypeA, 0); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("second concurrent forward: rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	close(release)
	if resp := <-first; resp == nil || len(resp.Answer) != 1 {
		t.Errorf("first forward: %v", resp)
	}
	got := out.String()
	want := `level=WARN msg="dns forwarding refused: too many queries in flight" sandbox=sb1 name=second.example. max=1`
	if !strings.Contains(got, want) {
		t.Errorf("log lacks %q:\n%s", want, got)
	}
	if strings.Contains(got, "name=first.example.") {
		t.Errorf("the forward in flight was logged:\n%s", got)
	}
}
