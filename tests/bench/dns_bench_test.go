package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// BenchmarkEmbeddedResolver measures local-name queries from inside a
// sandbox through 127.0.0.11:53 (the nat redirect to the resolver's real
// port, and back), as a container's libc sends them. It reports queries/s
// and latency percentiles.
//
//	rate=N:     open loop, queries sent at N/s (paced by nanosleep, over 8
//	            sockets) whatever the answers do: the latency
//	            a container sees at that load
//	reuse:      closed loop, each client keeps one socket (one conntrack entry)
//	new-socket: every query from a fresh socket, as getaddrinfo does, so
//	            every query is a new conntrack flow through DNAT and SNAT
func BenchmarkEmbeddedResolver(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	host := testutil.NewHostNS(b)
	c, err := libnetwork.New(benchOptions(host, dir)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Stop)
	origin := filepath.Join(dir, "resolv.conf")
	writeFileB(b, origin, "nameserver 127.0.0.1\n")
	n, err := c.NewNetwork("bridge", "bench", "",
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{bridge.BridgeName: "cnmbench0"}}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.83.0.0/24"}}, nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	var sbs []*libnetwork.Sandbox
	var eps []*libnetwork.Endpoint
	for _, name := range []string{"client", "server"} {
		sb, err := c.NewSandbox(name, libnetwork.OptionOriginResolvConfPath(origin))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sb.Delete() })
		ep, err := n.CreateEndpoint(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := ep.Join(sb); err != nil {
			b.Fatal(err)
		}
		sbs, eps = append(sbs, sb), append(eps, ep)
	}
	ns, err := netnsutil.Open(sbs[0].Key())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	want := eps[1].Info().Iface().Address().IP.To4()

	q := new(dns.Msg)
	q.SetQuestion("server.", dns.TypeA)
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchRate(b, ns, wire, want, rate) })
	}
	for _, mode := range []string{"reuse", "new-socket"} {
		for _, clients := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode, clients), func(b *testing.B) {
				benchQueries(b, ns, wire, want, clients, mode == "new-socket")
			})
		}
	}
}

// benchQueries spreads b.N queries over clients goroutines and reports
// throughput and latency percentiles. Sockets are made inside the sandbox's
// namespace in batches (a socket stays in the namespace it was made in);
// the time spent making them is not counted.
func benchQueries(b *testing.B, ns *netnsutil.NS, wire []byte, want net.IP, clients int, fresh bool) {
	const batch = 256
	per := (b.N + clients - 1) / clients
	lat := make([][]time.Duration, clients)
	busy := make([]time.Duration, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range clients {
		wg.Go(func() {
			buf := make([]byte, 512)
			msg := slices.Clone(wire)
			l := make([]time.Duration, 0, per)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			var setup time.Duration
			start := time.Now()
			for j := range per {
				if len(conns) == 0 {
					t0 := time.Now()
					k := 1
					if fresh {
						k = min(batch, per-j)
					}
					var err error
					if conns, err = dialMany(ns, k); err != nil {
						errs <- err
						return
					}
					setup += time.Since(t0)
				}
				conn := conns[0]
				msg[0], msg[1] = byte(j>>8), byte(j)
				t0 := time.Now()
				if _, err := conn.Write(msg); err != nil {
					errs <- err
					return
				}
				if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
					errs <- err
					return
				}
				m, err := conn.Read(buf)
				if err != nil {
					errs <- err
					return
				}
				l = append(l, time.Since(t0))
				// The last 4 bytes of the single A record are the address.
				if m < 16 || buf[3]&0x0f != 0 || !net.IP(buf[m-4:m]).Equal(want) {
					errs <- fmt.Errorf("bad answer % x", buf[:m])
					return
				}
				if fresh {
					conn.Close()
					conns = conns[1:]
				}
			}
			lat[i], busy[i] = l, time.Since(start)-setup
		})
	}
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) }
	b.ReportMetric(float64(len(all))/slices.Max(busy).Seconds(), "queries/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// dialMany opens k UDP sockets to 127.0.0.11:53 inside ns.
func dialMany(ns *netnsutil.NS, k int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, k)
	err := ns.Do(func() error {
		for range k {
			c, err := net.Dial("udp4", "127.0.0.11:53")
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, err
	}
	return conns, nil
}

func writeFileB(b *testing.B, p, content string) {
	b.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// benchRate sends min(b.N, 65536) queries at rate per second over a few
// sockets, each answer matched to its query by ID, and reports the
// latencies. Sending goes on whatever the answers do (open loop), so a slow
// resolver shows as latency, not as a slower client.
func benchRate(b *testing.B, ns *netnsutil.NS, wire []byte, want net.IP, rate int) {
	const nConns, tick = 8, 20 * time.Microsecond
	n := min(b.N, 1<<16)
	conns, err := dialMany(ns, nConns)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sent := make([]time.Time, n)
	lat := make([]time.Duration, n)
	var mu sync.Mutex // guards sent (written by the sender, read by receivers)
	var wg sync.WaitGroup
	errs := make(chan error, nConns+1)
	got := make([]int, nConns)
	dropsBefore := udpRcvbufErrors(b, ns)
	b.ResetTimer()
	for ci, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 512)
			for got[ci] < (n-ci+nConns-1)/nConns {
				m, err := c.Read(buf)
				now := time.Now()
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return // the rest was lost
				}
				if err != nil {
					errs <- err
					return
				}
				if m < 16 || buf[3]&0x0f != 0 || !net.IP(buf[m-4:m]).Equal(want) {
					errs <- fmt.Errorf("bad answer % x", buf[:m])
					return
				}
				id := int(buf[0])<<8 | int(buf[1])
				mu.Lock()
				lat[id] = now.Sub(sent[id])
				mu.Unlock()
				got[ci]++
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	msg := slices.Clone(wire)
	for i := 0; i < n; i++ {
		// nanosleep, not time.Sleep: Go's timers fire about 1 ms late on
		// this kind of VM, which would send queries in bursts of ~20. A
		// nanosleep overshoots ~0.1 ms, so bursts stay at 2-3 queries.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > tick {
			ts := unix.NsecToTimespec(int64(d))
			_ = unix.Nanosleep(&ts, nil)
		}
		msg[0], msg[1] = byte(i>>8), byte(i)
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := conns[i%nConns].Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	sendTime := time.Since(start)
	// Answers still missing 2 s after the last query are lost (a libc
	// would retry after 5 s): they count as infinitely late.
	for _, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	lost := 0
	for i := range lat {
		if lat[i] == 0 {
			lat[i] = time.Hour
			lost++
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(n-1)*p)].Microseconds()) }
	b.ReportMetric(float64(n)/sendTime.Seconds(), "queries/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(udpRcvbufErrors(b, ns)-dropsBefore), "rcvbuf-drops")
	b.ReportMetric(0, "ns/op")
}

// udpRcvbufErrors reads the UDP receive-buffer drop counter of ns (the
// resolver's socket and the clients' are all in it).
func udpRcvbufErrors(b *testing.B, ns *netnsutil.NS) int {
	b.Helper()
	var snmp []byte
	if err := ns.Do(func() (err error) {
		snmp, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(snmp), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, f := range names {
			if f == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.Atoi(fields[i])
				return v
			}
		}
	}
	b.Fatal("no Udp RcvbufErrors in /proc/net/snmp")
	return 0
}
