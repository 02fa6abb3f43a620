package macvlan_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A macvlan network gets the embedded resolver and DNS files as a bridge
// network does: containers find each other by name, the sandbox's
// resolv.conf points at 127.0.0.11 and hosts names the container, and
// other names are forwarded to the container's DNS server on the LAN.
// The controller forwards from the host's namespace for every driver, so
// the host has an address on the LAN here.
func TestResolverAndDNSFiles(t *testing.T) {
	r := newRig(t, 1)
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	addr, _ := netlink.ParseAddr("192.0.2.50/24")
	if err := r.host.Netlink.AddrAdd(lan0, addr); err != nil {
		t.Fatal(err)
	}
	lanDNS(t, r.lans[0].NS, neighbour(0), map[string]string{"outside.test.": "203.0.113.7"})
	n := r.macvlanNet("lan", "lan0", 0, nil)
	dir := t.TempDir()
	sandbox := func(name string) *libnetwork.Sandbox {
		sb, err := r.c.NewSandbox(name, libnetwork.OptionHostname(name),
			libnetwork.OptionResolvConfPath(filepath.Join(dir, name, "resolv.conf")),
			libnetwork.OptionHostsPath(filepath.Join(dir, name, "hosts")),
			libnetwork.OptionDNS(neighbour(0)))
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	sbA, sbB := sandbox("a"), sandbox("b")
	epA, err := n.CreateEndpoint("a")
	if err != nil {
		t.Fatal(err)
	}
	epB, err := n.CreateEndpoint("b")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []struct {
		ep *libnetwork.Endpoint
		sb *libnetwork.Sandbox
	}{{epA, sbA}, {epB, sbB}} {
		if err := j.ep.Join(j.sb); err != nil {
			t.Fatal(err)
		}
	}
	resolv, err := os.ReadFile(filepath.Join(dir, "a", "resolv.conf"))
	if err != nil || !strings.Contains(string(resolv), "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf: %q, %v", resolv, err)
	}
	hosts, err := os.ReadFile(filepath.Join(dir, "a", "hosts"))
	if err != nil || !strings.Contains(string(hosts), addrOf(epA)+"\ta") {
		t.Fatalf("hosts: %q, %v; want %s a", hosts, err, addrOf(epA))
	}
	nsA, _ := testrig.SandboxNS(t, sbA)
	for name, want := range map[string]string{"b": addrOf(epB), "outside.test": "203.0.113.7"} {
		got, err := lookupA(nsA, name)
		if err != nil || got != want {
			t.Fatalf("resolving %s in a: %q, %v; want %s", name, got, err, want)
		}
	}
}

// lanDNS serves A records over UDP on addr:53 inside ns, NXDOMAIN for
// other names; it stops at test end.
func lanDNS(t *testing.T, ns *netnsutil.NS, addr string, answers map[string]string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr+":53"); return err }); err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if ip, ok := answers[strings.ToLower(q.Question[0].Name)]; ok {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip).To4()})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	started, done := make(chan struct{}), make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go func() { defer close(done); _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown(); <-done })
}

// lookupA asks the sandbox's embedded resolver, as a container's libc
// would, for name's first A record, asking again (a UDP query or its
// answer may be lost) for up to 10 s.
func lookupA(ns *netnsutil.NS, name string) (string, error) {
	var got string
	err := ns.Do(func() error {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var resp *dns.Msg
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, "127.0.0.11:53")
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			return err
		}
		for _, rr := range resp.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = a.A.String()
				return nil
			}
		}
		got = dns.RcodeToString[resp.Rcode]
		return nil
	})
	return got, err
}
