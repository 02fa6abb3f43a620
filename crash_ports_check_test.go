package libnetwork_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
	"golang.org/x/sys/unix"
)

// checkPorts checks the published ports after a restart: only a sandbox's
// gateway endpoint publishes, exactly its sandbox's ports and its own
// (fixed host ports as asked); no host port is published twice; each is
// held in the host namespace (a bind on it fails) and has its port map
// element (its DNAT); and every port rule or element (comment
// cnm-ep-<id>) belongs to a published binding. It returns the bindings each endpoint publishes.
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
	holder := map[string]string{} // proto/host port -> endpoint
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
			k := portName(pb)
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
		if !samePorts(pbs, want) {
			t.Errorf("gateway endpoint %s of sandbox %.12s publishes %v, want %v", ep.Name(), sb.ID(), pbs, want)
		}
	}

	elems := portMapElems(t, host.NS)
	for id, pbs := range published {
		for _, pb := range pbs {
			if !portHeldBy(t, host, pb) {
				t.Errorf("host port %s of endpoint %s is not held: a bind on it succeeds", portName(pb), eps[id].Name())
			}
			if !slices.ContainsFunc(elems, func(e firewall.PortElem) bool { return isElemOf(e, id, pb) }) {
				t.Errorf("host port %s of endpoint %s has no port map element", portName(pb), eps[id].Name())
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

func portName(pb types.PortBinding) string {
	ip := "0.0.0.0"
	if pb.HostIP != nil && !pb.HostIP.IsUnspecified() {
		ip = pb.HostIP.String()
	}
	return fmt.Sprintf("%s/%s", pb.Proto, net.JoinHostPort(ip, fmt.Sprint(pb.HostPort)))
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
// socket of its protocol there fails with EADDRINUSE.
func portHeldBy(t *testing.T, host *testutil.HostNS, pb types.PortBinding) bool {
	t.Helper()
	addr := net.JoinHostPort("0.0.0.0", fmt.Sprint(pb.HostPort))
	var err error
	herr := host.Do(func() error {
		if pb.Proto == types.UDP {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp4", addr); err == nil {
				pc.Close()
			}
			return nil
		}
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
		return nil
	})
	if herr != nil {
		t.Fatal(herr)
	}
	return errors.Is(err, unix.EADDRINUSE)
}

// endpointPortsRecord is what the port checks read of an endpoint record.
type endpointPortsRecord struct {
	Name      string
	OperPorts []types.PortBinding
}

// storedEndpointPorts reads every endpoint record of the (stopped)
// controller whose data directory is dataDir, by endpoint ID.
func storedEndpointPorts(t *testing.T, dataDir string) map[string]endpointPortsRecord {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(dataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List("endpoint")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]endpointPortsRecord{}
	for id, raw := range recs {
		var r endpointPortsRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	return out
}

// checkPortRecords reads the store of a stopped controller: every
// endpoint record's published ports (OperPorts) are what its endpoint
// published while running, so no record claims a host port that another
// holds or that was given up.
func checkPortRecords(t *testing.T, dirs crashDirs, published map[string][]types.PortBinding) {
	t.Helper()
	for id, r := range storedEndpointPorts(t, dirs.data) {
		got, want := portNames(r.OperPorts), portNames(published[id])
		if !slices.Equal(got, want) {
			t.Errorf("record of endpoint %s claims host ports %v, it published %v", r.Name, got, want)
		}
	}
}

func portNames(pbs []types.PortBinding) []string {
	var out []string
	for _, pb := range pbs {
		out = append(out, portName(pb))
	}
	slices.Sort(out)
	return out
}
