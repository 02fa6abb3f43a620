package testrig

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// FakeUpstream serves DNS on addr:53 (UDP and TCP) inside ns, standing in
// for a resolver on the host's loopback. It answers A queries for the names
// in answers (FQDN -> IPv4) and NXDOMAIN for anything else, and counts the
// queries it got.
func FakeUpstream(t *testing.T, ns *netnsutil.NS, addr string, answers map[string]string) *atomic.Int64 {
	t.Helper()
	var count atomic.Int64
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		count.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		qn := q.Question[0]
		if ip, ok := answers[strings.ToLower(qn.Name)]; ok && qn.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: qn.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(ip).To4(),
			})
		} else if !ok {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	err := ns.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp4", addr+":53"); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", addr+":53"); err != nil {
			pc.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("fake upstream on %s:53: %v", addr, err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown(); <-done })
	}
	return &count
}

// Query asks the embedded resolver of the sandbox whose namespace is ns,
// through 127.0.0.11:53 as a container's libc would.
func Query(ns *netnsutil.NS, network, name string, qtype uint16) (*dns.Msg, error) {
	var resp *dns.Msg
	err := ns.Do(func() error {
		cl := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		var err error
		resp, _, err = cl.Exchange(m, "127.0.0.11:53")
		return err
	})
	return resp, err
}

// answerIPs returns the A/AAAA addresses of resp (or the rcode name when it
// is not NOERROR).
// AnswerIPs lists an answer's addresses and PTR names, or its rcode's
// name when it is not NOERROR.
func AnswerIPs(resp *dns.Msg) []string { return answerIPs(resp) }

func answerIPs(resp *dns.Msg) []string {
	if resp.Rcode != dns.RcodeSuccess {
		return []string{dns.RcodeToString[resp.Rcode]}
	}
	var out []string
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	return out
}

// Expect queries name over network and checks the answer list.
func Expect(t *testing.T, ns *netnsutil.NS, network, name string, qtype uint16, want ...string) {
	t.Helper()
	resp, err := Query(ns, network, name, qtype)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, dns.TypeToString[qtype], name, err)
	}
	got := answerIPs(resp)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s query %s %s = %v, want %v", network, dns.TypeToString[qtype], name, got, want)
	}
}

// NatRules lists the IPv4 nat table inside ns.
func NatRules(t *testing.T, ns *netnsutil.NS) string {
	t.Helper()
	out, err := iptables.New(ns).List(firewall.IPv4, firewall.TableNAT)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RedirectRules counts the rules of the resolver's port-53 redirect inside
// ns: 4 when installed (DNAT and SNAT for udp and tcp), 0 when not.
func RedirectRules(t *testing.T, ns *netnsutil.NS) int {
	t.Helper()
	n, err := dnsnat.Rules(ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// KernelSandbox creates a sandbox with its own namespace, deleted at test end.
func KernelSandbox(t *testing.T, c *libnetwork.Controller, cid string, opts ...libnetwork.SandboxOption) *libnetwork.Sandbox {
	t.Helper()
	sb := Must[*libnetwork.Sandbox](t)(c.NewSandbox(cid, opts...))
	t.Cleanup(func() {
		if err := sb.Delete(); err != nil {
			t.Errorf("deleting sandbox of %s: %v", cid, err)
		}
	})
	return sb
}

// Joined creates an endpoint on n and joins it to sb.
func Joined(t *testing.T, n *libnetwork.Network, sb *libnetwork.Sandbox, name string, opts ...libnetwork.EndpointOption) *libnetwork.Endpoint {
	t.Helper()
	ep := Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(name, opts...))
	if err := ep.Join(sb); err != nil {
		t.Fatalf("joining %s: %v", name, err)
	}
	return ep
}
