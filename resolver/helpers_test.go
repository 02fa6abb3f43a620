package resolver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork/types"
)

// fakeBackend is an in-memory Backend.
type fakeBackend struct {
	mu    sync.Mutex
	v4    map[string][]net.IP
	v6    map[string][]net.IP
	ptr   map[string]string
	names []string // every name passed to ResolveName, to check normalisation
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		v4: map[string][]net.IP{
			"c1":          {net.ParseIP("172.18.0.2")},
			"c1.net1":     {net.ParseIP("172.18.0.2")},
			"multi":       {net.ParseIP("172.18.0.3"), net.ParseIP("172.18.0.4"), net.ParseIP("172.18.0.5")},
			"v4only":      {net.ParseIP("172.18.0.6")},
			"dual":        {net.ParseIP("172.18.0.7")},
			"wrongfamily": {net.ParseIP("fd00::99")}, // a buggy backend must not produce a bad A record
		},
		v6: map[string][]net.IP{
			"dual": {net.ParseIP("fd00::7")},
		},
		ptr: map[string]string{
			"172.18.0.2": "c1.net1",
			"fd00::7":    "dual.net1",
		},
	}
}

func (b *fakeBackend) ResolveName(name string, ipType int) ([]net.IP, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.names = append(b.names, name)
	_, has4 := b.v4[name]
	_, has6 := b.v6[name]
	switch ipType {
	case types.IPv4:
		return b.v4[name], has6 && !has4
	case types.IPv6:
		return b.v6[name], has4 && !has6
	default:
		return append(append([]net.IP(nil), b.v4[name]...), b.v6[name]...), has4 || has6
	}
}

func (b *fakeBackend) ResolveIP(ip string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ptr[ip]
}

// fakeUpstream is a DNS server on 127.0.0.1 listening on UDP and TCP on the
// same port, answering with handle and counting queries.
type fakeUpstream struct {
	addr    netip.AddrPort
	queries atomic.Int64
}

func startUpstream(t testing.TB, handle func(w dns.ResponseWriter, q *dns.Msg)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	pc, ln := listenPair(t)
	u.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		u.queries.Add(1)
		handle(w, q)
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown(); <-done })
	}
	return u
}

// listenPair opens a UDP socket and a TCP listener on one 127.0.0.1 port.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		return pc, ln
	}
	t.Fatal("no free port pair on 127.0.0.1")
	return nil, nil
}

// blackHole is an upstream that receives and never answers.
func blackHole(t testing.TB) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	pc, ln := listenPair(t)
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	})
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	})
	t.Cleanup(func() { pc.Close(); ln.Close(); wg.Wait() })
	return netip.MustParseAddrPort(pc.LocalAddr().String()), &n
}

// answerA replies with one A record for any question.
func answerA(ip string) func(w dns.ResponseWriter, q *dns.Msg) {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A:   net.ParseIP(ip),
		})
		_ = w.WriteMsg(m)
	}
}

func answerRcode(rcode int) func(w dns.ResponseWriter, q *dns.Msg) {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		_ = w.WriteMsg(m)
	}
}

// startResolver starts a Resolver on fresh 127.0.0.1 sockets.
func startResolver(t testing.TB, cfg Config) (*Resolver, string) {
	t.Helper()
	pc, ln := listenPair(t)
	cfg.UDP, cfg.TCP = pc, ln
	if cfg.Backend == nil {
		cfg.Backend = newFakeBackend()
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, pc.LocalAddr().String()
}

func upstreams(addrs ...netip.AddrPort) []Upstream {
	var out []Upstream
	for _, a := range addrs {
		out = append(out, Upstream{AddrPort: a})
	}
	return out
}

// query sends one question and returns the reply.
func query(t testing.TB, addr, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.ExchangeContext(context.Background(), m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	if resp.Id != m.Id {
		t.Fatalf("reply id %d, want %d", resp.Id, m.Id)
	}
	return resp
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[0]+" "+f[3]+" "+strings.Join(f[4:], " "))
	}
	return out
}
