package resolver

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork/types"
)

func TestLocalAnswers(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1"))
	be := newFakeBackend()
	_, addr := startResolver(t, Config{Backend: be, Upstreams: upstreams(up.addr), TTL: 42})

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // "owner TYPE rdata", sorted
	}{
		{name: "c1", qtype: dns.TypeA, want: []string{"c1. A 172.18.0.2"}},
		{name: "C1.Net1", qtype: dns.TypeA, want: []string{"C1.Net1. A 172.18.0.2"}},
		{name: "multi", qtype: dns.TypeA, want: []string{"multi. A 172.18.0.3", "multi. A 172.18.0.4", "multi. A 172.18.0.5"}},
		{name: "dual", qtype: dns.TypeAAAA, want: []string{"dual. AAAA fd00::7"}},
		{name: "v4only", qtype: dns.TypeAAAA},   // known, no v6: empty NOERROR, not forwarded
		{name: "wrongfamily", qtype: dns.TypeA}, // backend bug: no bogus record
		{name: "c1", qtype: dns.TypeMX},         // known name, other type: empty NOERROR
		{name: "2.0.18.172.in-addr.arpa", qtype: dns.TypePTR, want: []string{"2.0.18.172.in-addr.arpa. PTR c1.net1."}},
		{name: "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", qtype: dns.TypePTR,
			want: []string{"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR dual.net1."}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
				resp := query(t, addr, network, tc.name, tc.qtype, 0)
				if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
					t.Fatalf("rcode %s, aa %v", dns.RcodeToString[resp.Rcode], resp.Authoritative)
				}
				got := answers(resp)
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("answers %q, want %q", got, tc.want)
				}
				for _, rr := range resp.Answer {
					if rr.Header().Ttl != 42 {
						t.Errorf("ttl %d, want 42", rr.Header().Ttl)
					}
				}
			})
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream got %d queries for local names", n)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	for _, n := range be.names {
		if n != strings.ToLower(n) || strings.HasSuffix(n, ".") {
			t.Errorf("backend got %q, want lower case without trailing dot", n)
		}
	}
}

func TestForward(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1"))
	_, addr := startResolver(t, Config{Upstreams: upstreams(up.addr)})
	for _, network := range []string{"udp", "tcp"} {
		resp := query(t, addr, network, "example.org", dns.TypeA, 0)
		if got := answers(resp); !slices.Equal(got, []string{"example.org. A 192.0.2.1"}) {
			t.Fatalf("%s: answers %q", network, got)
		}
		// An unknown PTR goes upstream too.
		resp = query(t, addr, network, "9.9.18.172.in-addr.arpa", dns.TypePTR, 0)
		if resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s: forwarded PTR rcode %s", network, dns.RcodeToString[resp.Rcode])
		}
	}
	if n := up.queries.Load(); n != 4 {
		t.Fatalf("upstream got %d queries, want 4", n)
	}
}

func TestNoUpstreamsServfail(t *testing.T) {
	r, addr := startResolver(t, Config{})
	if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	// Upstreams set later are used.
	up := startUpstream(t, answerA("192.0.2.1"))
	r.SetUpstreams(upstreams(up.addr))
	if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("after SetUpstreams: %v", resp)
	}
}

func TestNextUpstreamOnServfailNotOnNxdomain(t *testing.T) {
	servfail := startUpstream(t, answerRcode(dns.RcodeServerFailure))
	refused := startUpstream(t, answerRcode(dns.RcodeRefused))
	good := startUpstream(t, answerA("192.0.2.1"))
	_, addr := startResolver(t, Config{Upstreams: upstreams(servfail.addr, refused.addr, good.addr)})
	if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("want the third server's answer, got %v", resp)
	}

	nx := startUpstream(t, answerRcode(dns.RcodeNameError))
	after := startUpstream(t, answerA("192.0.2.1"))
	_, addr = startResolver(t, Config{Upstreams: upstreams(nx.addr, after.addr)})
	if resp := query(t, addr, "udp", "nope.example", dns.TypeA, 0); resp.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s, want NXDOMAIN", dns.RcodeToString[resp.Rcode])
	}
	if n := after.queries.Load(); n != 0 {
		t.Fatalf("NXDOMAIN is final, yet the next server got %d queries", n)
	}

	// Every server fails: the client sees the last failure.
	_, addr = startResolver(t, Config{Upstreams: upstreams(servfail.addr, refused.addr)})
	if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); resp.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED (last server's)", dns.RcodeToString[resp.Rcode])
	}
}

// A silent upstream costs one timeout per query until it has failed
// FailThreshold times; then it goes to the back of the list and queries are
// answered by the next server without waiting.
func TestTimeoutAndFailureHandling(t *testing.T) {
	dead, hits := blackHole(t)
	good := startUpstream(t, answerA("192.0.2.1"))
	const timeout = 150 * time.Millisecond
	r, addr := startResolver(t, Config{
		Upstreams: upstreams(dead, good.addr), Timeout: timeout, FailThreshold: 2, DownFor: time.Minute,
	})
	for i := range 2 {
		start := time.Now()
		if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); len(resp.Answer) != 1 {
			t.Fatalf("query %d: %v", i, resp)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("query %d answered in %v, before the dead server's timeout", i, d)
		}
	}
	st := r.Upstreams()
	if !st[0].Down || st[0].Failures != 2 || st[1].Down || st[1].Queries != 2 {
		t.Fatalf("status after two timeouts: %+v", st)
	}
	before := hits.Load()
	start := time.Now()
	for range 5 {
		if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); len(resp.Answer) != 1 {
			t.Fatalf("answer %v", resp)
		}
	}
	// Waiting on the down server would cost at least a timeout per query.
	if d := time.Since(start); d >= 5*timeout {
		t.Fatalf("5 queries took %v: the down server is still being waited on", d)
	}
	if n := hits.Load(); n != before {
		t.Fatalf("down server got %d more queries", n-before)
	}
	// SetUpstreams keeps the health of servers that stay.
	r.SetUpstreams(upstreams(dead, good.addr))
	if st := r.Upstreams(); !st[0].Down {
		t.Fatalf("health lost on SetUpstreams: %+v", st)
	}
}

// When every server is down they are still tried: being down only reorders.
func TestAllDownStillTried(t *testing.T) {
	flaky := startUpstream(t, answerA("192.0.2.1"))
	r, addr := startResolver(t, Config{Upstreams: upstreams(flaky.addr), FailThreshold: 1})
	r.upstreams[0].record(false, 1, time.Minute)
	if st := r.Upstreams(); !st[0].Down {
		t.Fatal("not down")
	}
	if resp := query(t, addr, "udp", "example.org", dns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("answer %v", resp)
	}
	if st := r.Upstreams(); st[0].Down {
		t.Fatal("a success did not clear the down mark")
	}
}

// bigAnswer answers over UDP with an empty truncated reply and over TCP with
// 40 A records (over 512 bytes).
func bigAnswer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		m.Truncated = true
		_ = w.WriteMsg(m)
		return
	}
	for i := range 40 {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A:   net.IPv4(192, 0, 2, byte(i+1)),
		})
	}
	_ = w.WriteMsg(m)
}

func TestTruncationFallsBackToTCP(t *testing.T) {
	up := startUpstream(t, bigAnswer)
	_, addr := startResolver(t, Config{Upstreams: upstreams(up.addr)})

	// EDNS client with room: the full answer over UDP, fetched by TCP upstream.
	resp := query(t, addr, "udp", "big.example", dns.TypeA, 4096)
	if resp.Truncated || len(resp.Answer) != 40 {
		t.Fatalf("EDNS 4096 client: tc=%v, %d answers; want the 40 records", resp.Truncated, len(resp.Answer))
	}
	// Plain 512-byte client: TC set so it retries over TCP ...
	resp = query(t, addr, "udp", "big.example", dns.TypeA, 0)
	resp.Compress = true // measure the wire size, which was compressed
	if !resp.Truncated || resp.Len() > dns.MinMsgSize {
		t.Fatalf("512-byte client: tc=%v len=%d", resp.Truncated, resp.Len())
	}
	// ... where it gets everything.
	resp = query(t, addr, "tcp", "big.example", dns.TypeA, 0)
	if resp.Truncated || len(resp.Answer) != 40 {
		t.Fatalf("tcp: tc=%v, %d answers", resp.Truncated, len(resp.Answer))
	}
}

func TestLocalAnswerTruncated(t *testing.T) {
	be := newFakeBackend()
	var many []net.IP
	for i := range 60 {
		many = append(many, net.IPv4(10, 0, 0, byte(i+1)))
	}
	be.v4["many"] = many
	_, addr := startResolver(t, Config{Backend: be})
	if resp := query(t, addr, "udp", "many", dns.TypeA, 0); !resp.Truncated {
		t.Fatalf("60 A records over 512-byte UDP not truncated (len %d)", resp.Len())
	}
	if resp := query(t, addr, "tcp", "many", dns.TypeA, 0); resp.Truncated || len(resp.Answer) != 60 {
		t.Fatalf("tcp: tc=%v, %d answers", resp.Truncated, len(resp.Answer))
	}
}

func TestDialHook(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1"))
	var mu sync.Mutex
	var seen []Upstream
	var nets []string
	dial := func(ctx context.Context, network string, u Upstream) (net.Conn, error) {
		mu.Lock()
		seen, nets = append(seen, u), append(nets, network)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, up.addr.String())
	}
	loop := Upstream{AddrPort: netip.MustParseAddrPort("127.0.0.53:53"), HostLoopback: true}
	_, addr := startResolver(t, Config{Upstreams: []Upstream{loop}, Dial: dial})
	query(t, addr, "udp", "example.org", dns.TypeA, 0)
	query(t, addr, "tcp", "example.org", dns.TypeA, 0)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []Upstream{loop, loop}) || !slices.Equal(nets, []string{"udp", "tcp"}) {
		t.Fatalf("dial saw %+v over %q", seen, nets)
	}
}

func TestMaxForwards(t *testing.T) {
	release := make(chan struct{})
	slow := startUpstream(t, func(w dns.ResponseWriter, q *dns.Msg) {
		<-release
		answerA("192.0.2.1")(w, q)
	})
	_, addr := startResolver(t, Config{Upstreams: upstreams(slow.addr), MaxForwards: 1})
	first := make(chan *dns.Msg)
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("first.example.", dns.TypeA)
		resp, _, _ := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
		first <- resp
	}()
	for slow.queries.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if resp := query(t, addr, "udp", "second.example", dns.TypeA, 0); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("second concurrent forward: rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	// Local names are not limited.
	if resp := query(t, addr, "udp", "c1", dns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("local answer while forwards are full: %v", resp)
	}
	close(release)
	if resp := <-first; resp == nil || len(resp.Answer) != 1 {
		t.Fatalf("first forward: %v", resp)
	}
}

func TestMalformedQueries(t *testing.T) {
	_, addr := startResolver(t, Config{})
	c := &dns.Client{Timeout: 5 * time.Second}

	m := new(dns.Msg)
	m.SetQuestion("a.", dns.TypeA)
	m.Question = append(m.Question, dns.Question{Name: "b.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	resp, _, err := c.Exchange(m, addr)
	if err != nil || resp.Rcode != dns.RcodeFormatError {
		t.Fatalf("two questions: %v, %v", resp, err)
	}

	m = new(dns.Msg)
	m.SetUpdate("example.")
	resp, _, err = c.Exchange(m, addr)
	if err != nil || resp.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("update: %v, %v", resp, err)
	}

	// Garbage must not kill the server.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2})
	conn.Close()
	if resp := query(t, addr, "udp", "c1", dns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("after garbage: %v", resp)
	}
}

func TestLifecycle(t *testing.T) {
	if _, err := New(Config{Backend: newFakeBackend()}); !types.IsBadRequest(err) {
		t.Fatalf("New without sockets: %v", err)
	}
	pc, ln := listenPair(t)
	if _, err := New(Config{UDP: pc, TCP: ln}); !types.IsBadRequest(err) {
		t.Fatalf("New without backend: %v", err)
	}
	r, err := New(Config{UDP: pc, TCP: ln, Backend: newFakeBackend()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	addr := pc.LocalAddr().String()
	query(t, addr, "tcp", "c1", dns.TypeA, 0)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Start(); !types.IsForbidden(err) {
		t.Fatalf("Start after Close: %v, want Forbidden", err)
	}
	// The sockets are closed: the port can be bound again.
	pc2, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("udp socket not released: %v", err)
	}
	pc2.Close()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("tcp socket not released: %v", err)
	}
	ln2.Close()
}

// Close aborts forwards waiting on a silent upstream instead of waiting out
// their timeout.
func TestCloseAbortsForwards(t *testing.T) {
	dead, hits := blackHole(t)
	pc, ln := listenPair(t)
	r, err := New(Config{UDP: pc, TCP: ln, Backend: newFakeBackend(), Upstreams: upstreams(dead), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("example.org.", dns.TypeA)
		_, _, _ = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, pc.LocalAddr().String())
	}()
	for hits.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestPTRParsing(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"4.3.2.1.in-addr.arpa", "1.2.3.4"},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "2001:db8::1"},
		{"3.2.1.in-addr.arpa", ""},
		{"256.3.2.1.in-addr.arpa", ""},
		{"04.3.2.1.in-addr.arpa", ""},
		{"1.0.0.ip6.arpa", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", ""},
		{"example.org", ""},
	}
	for _, tc := range tests {
		a, ok := ptrIP(tc.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("ptrIP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
