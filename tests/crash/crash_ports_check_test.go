package crash

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// checkPorts checks the published ports after a restart: only a sandbox's
// gateway endpoint publishes, exactly its sandbox's ports and its own
// (fixed host ports as asked) in IPv4, and the same again in IPv6 when it
// has an IPv6 address, each IPv6 binding on its IPv4 twin's host port; no
// host port is published twice in one family; each is held in the host
// namespace (a bind of its family on it fails) and has its port map
// element (its DNAT, in the ip or ip6 table); and every port rule or
// element (comment cnm-ep-<id>) belongs to a published binding. It
// returns the bindings each endpoint publishes.
func checkPorts(t *testing.T, host *testutil.HostNS, eps map[string]*libnetwork.Endpoint, sbs []*libnetwork.Sandbox, active crashActive) map[string][]types.PortBinding {
	t.Helper()
	gateway := map[string]*libnetwork.Sandbox{} // endpoint ID -> sandbox it is the gateway of
	for _, sb := range sbs {
		for _, ep := range sb.Endpoints() {
			if ep.Info().Gateway() != nil {
				gateway[ep.ID()] = sb
				break
			}
		}
	}
	published := map[string][]types.PortBinding{}
	// proto/host address:port -> endpoint. portName tells the families
	// apart ([::] is not 0.0.0.0): a host port is the IPv4 binding of one
	// endpoint and the IPv6 binding of one endpoint, never two of either
	// (the port mapper takes a host port in a family for one binding only).
	holder := map[string]string{}
	for id, ep := range eps {
		info, err := ep.DriverInfo()
		if err != nil {
			t.Errorf("driver info of %s: %v", ep.Name(), err)
			continue
		}
		pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
		if len(pbs) > 0 {
			published[id] = pbs
		}
		for _, pb := range pbs {
			// A DNAT never crosses families: the port mapper pairs the
			// IPv4 host side with the container's IPv4 address and the
			// IPv6 side with its IPv6 address.
			if pb.HostIP != nil && (pb.HostIP.To4() == nil) != testrig.BindingIs6(pb) {
				t.Errorf("endpoint %s publishes %s to %s across families", ep.Name(), testrig.PortName(pb), pb.IP)
			}
			k := testrig.PortName(pb)
			if prev, dup := holder[k]; dup {
				t.Errorf("host port %s published by endpoints %s and %s", k, prev, ep.Name())
			}
			holder[k] = ep.Name()
		}
		sb := gateway[id]
		if sb == nil {
			if len(pbs) > 0 {
				t.Errorf("endpoint %s publishes %v but is no sandbox's gateway", ep.Name(), pbs)
			}
			continue
		}
		want := slices.Clone(active[sb.ID()])
		if strings.HasPrefix(ep.Name(), crashOwnPortPrefix) {
			want = append(want, crashOwnPorts...)
		}
		// Every binding the child asks for is on every host address, so
		// it is published in IPv4 and, exactly when the endpoint has an
		// IPv6 address, in IPv6 as well.
		var want6 []types.PortBinding
		if ep.Info().Iface().AddressIPv6() != nil {
			want6 = want
		}
		pbs4, pbs6 := testrig.SplitFamilies(pbs)
		if !samePorts(pbs4, want) || !samePorts(pbs6, want6) {
			t.Errorf("gateway endpoint %s of sandbox %.12s publishes %v, want %v in IPv4 and %v in IPv6",
				ep.Name(), sb.ID(), pbs, want, want6)
		}
		// One request takes the same host port in both families (a
		// chosen port too), so each IPv6 binding has an IPv4 twin on
		// its host port.
		for _, b6 := range pbs6 {
			if !slices.ContainsFunc(pbs4, func(b4 types.PortBinding) bool {
				return b4.Proto == b6.Proto && b4.Port == b6.Port && b4.HostPort == b6.HostPort
			}) {
				t.Errorf("IPv6 binding %s of endpoint %s has no IPv4 twin on its host port (%v)", testrig.PortName(b6), ep.Name(), pbs4)
			}
		}
	}

	elems := testrig.PortMapElems(t, host.NS)
	for id, pbs := range published {
		for _, pb := range pbs {
			if !portHeldBy(t, host, pb) {
				t.Errorf("host port %s of endpoint %s is not held: a bind on it succeeds", testrig.PortName(pb), eps[id].Name())
			}
			if !slices.ContainsFunc(elems, func(e firewall.PortElem) bool { return isElemOf(e, id, pb) }) {
				t.Errorf("host port %s of endpoint %s has no port map element", testrig.PortName(pb), eps[id].Name())
			}
		}
	}
	for _, r := range cnmRules(t, host) {
		m := ruleOwner.FindStringSubmatch(r)
		if m == nil || m[1] != "ep" {
			continue
		}
		if len(published[m[2]]) == 0 {
			t.Errorf("port rule or element of endpoint %.12s, which publishes nothing: %s", m[2], r)
		}
	}
	for _, e := range elems {
		id, ok := strings.CutPrefix(e.Owner, "cnm-ep-")
		if pbs := published[id]; ok && len(pbs) > 0 && !slices.ContainsFunc(pbs, func(pb types.PortBinding) bool { return isElemOf(e, id, pb) }) {
			t.Errorf("port map element of endpoint %.12s for no binding it publishes (%v): %s", id, pbs, e)
		}
	}
	return published
}

// samePorts compares published bindings with the asked ones by protocol
// and container port; a fixed host port must be the one asked for.
func samePorts(got, want []types.PortBinding) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, g := range got {
			if !used[i] && g.Proto == w.Proto && g.Port == w.Port && (w.HostPort == 0 || g.HostPort == w.HostPort) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}

// isElemOf reports whether e is endpoint id's DNAT of pb.
func isElemOf(e firewall.PortElem, id string, pb types.PortBinding) bool {
	var host netip.Addr
	if pb.HostIP != nil && !pb.HostIP.IsUnspecified() {
		host, _ = netip.AddrFromSlice(pb.HostIP)
		host = host.Unmap()
	}
	ctr, _ := netip.AddrFromSlice(pb.IP)
	return e.Owner == firewall.EndpointOwner(id) && e.Proto == pb.Proto && e.HostIP == host && e.HostPort == pb.HostPort &&
		e.ContainerIP == ctr.Unmap() && e.ContainerPort == pb.Port
}

// portHeldBy reports whether pb's host port is taken in host: binding a
// socket of its protocol and family on every address there fails with
// EADDRINUSE. Go's udp6/tcp6 sockets are IPV6_V6ONLY, as the library's
// own IPv6 reservations are, so the IPv4 reservation of the same port
// does not make an IPv6 one look held (nor the other way round).
func portHeldBy(t *testing.T, host *testutil.HostNS, pb types.PortBinding) bool {
	t.Helper()
	addr, fam := net.JoinHostPort("0.0.0.0", fmt.Sprint(pb.HostPort)), "4"
	if testrig.BindingIs6(pb) {
		addr, fam = net.JoinHostPort("::", fmt.Sprint(pb.HostPort)), "6"
	}
	var err error
	herr := host.Do(func() error {
		if pb.Proto == types.UDP {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp"+fam, addr); err == nil {
				pc.Close()
			}
			return nil
		}
		var l net.Listener
		if l, err = net.Listen("tcp"+fam, addr); err == nil {
			l.Close()
		}
		return nil
	})
	if herr != nil {
		t.Fatal(herr)
	}
	return errors.Is(err, unix.EADDRINUSE)
}

// checkPortRecords reads the store of a stopped controller: every
// endpoint record's published ports (OperPorts) are what its endpoint
// published while running, so no record claims a host port that another
// holds or that was given up.
func checkPortRecords(t *testing.T, dirs crashDirs, published map[string][]types.PortBinding) {
	t.Helper()
	for id, r := range testrig.StoredEndpoints(t, dirs.data) {
		got, want := testrig.PortNames(r.OperPorts), testrig.PortNames(published[id])
		if !slices.Equal(got, want) {
			t.Errorf("record of endpoint %s claims host ports %v, it published %v", r.Name, got, want)
		}
	}
}
