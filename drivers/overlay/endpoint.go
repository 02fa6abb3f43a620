package overlay

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/optval"
	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// endpoint is a local endpoint of an overlay network.
type endpoint struct {
	id     string
	mac    net.HardwareAddr
	v4, v6 netip.Prefix // zero for none
	joined bool
}

// CreateEndpoint records the endpoint with its addresses (the
// controller's) and a MAC: the request's, or a random locally
// administered one, returned. A MAC derived from the address would be
// reused with the address on another host while the old peer entry may
// still be programmed.
func (d *Driver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	what := "creating overlay endpoint " + req.EndpointID
	if err := optval.NoPublishedPorts(what, "overlay", "it is internal", req.Options); err != nil {
		return nil, err
	}
	in := req.Interface
	v4, err := prefixOf(in.Address, true)
	if err != nil {
		return nil, types.BadRequestErrorf("%s: %w", what, err)
	}
	v6, err := prefixOf(in.AddressIPv6, false)
	if err != nil {
		return nil, types.BadRequestErrorf("%s: %w", what, err)
	}
	if !v4.IsValid() && !v6.IsValid() {
		return nil, types.BadRequestErrorf("%s: no address: an overlay endpoint is reached at its addresses", what)
	}
	var chosen *driverapi.Interface
	mac := in.MacAddress
	if mac == nil {
		mac = macaddr.Random()
		chosen = &driverapi.Interface{MacAddress: append(net.HardwareAddr(nil), mac...)}
	} else if len(mac) != 6 || mac[0]&1 != 0 {
		return nil, types.BadRequestErrorf("%s: invalid MAC address %s: want a unicast Ethernet address", what, mac)
	}
	n, err := d.lockNetwork(what, req.NetworkID)
	if err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	if _, ok := n.endpoints[req.EndpointID]; ok {
		return nil, driverapi.ErrEndpointExists(req.EndpointID)
	}
	n.endpoints[req.EndpointID] = &endpoint{id: req.EndpointID, mac: append(net.HardwareAddr(nil), mac...), v4: v4, v6: v6}
	return chosen, nil
}

// prefixOf converts an interface address of the family v4 (or IPv6).
func prefixOf(ipn *net.IPNet, v4 bool) (netip.Prefix, error) {
	if ipn == nil {
		return netip.Prefix{}, nil
	}
	ip := ipn.IP.To4()
	if !v4 {
		if ip != nil {
			return netip.Prefix{}, fmt.Errorf("%s is not an IPv6 address", ipn)
		}
		ip = ipn.IP.To16()
	}
	a, ok := netip.AddrFromSlice(ip)
	ones, bits := ipn.Mask.Size()
	if !ok || bits != a.BitLen() {
		fam := "IPv6"
		if v4 {
			fam = "IPv4"
		}
		return netip.Prefix{}, fmt.Errorf("%s is not an %s address with its mask", ipn, fam)
	}
	return netip.PrefixFrom(a, ones), nil
}

// DeleteEndpoint forgets a left endpoint. An unknown one is success; a
// joined one is Forbidden.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	n, err := d.lockNetwork("", nid)
	if err != nil {
		return nil
	}
	defer n.mu.Unlock()
	ep, ok := n.endpoints[eid]
	if !ok {
		return nil
	}
	if ep.joined {
		return types.ForbiddenErrorf("deleting overlay endpoint %s: it is joined", eid)
	}
	delete(n.endpoints, eid)
	return nil
}

// EndpointOperInfo reports the endpoint's MAC.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	what := "reading overlay endpoint " + eid
	n, err := d.lockNetwork(what, nid)
	if err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	ep, ok := n.endpoints[eid]
	if !ok {
		return nil, driverapi.ErrNoEndpoint(eid)
	}
	return map[string]any{netlabel.MacAddress: append(net.HardwareAddr(nil), ep.mac...)}, nil
}

// Join plugs the endpoint into the network's data plane, building it
// (with the network's known peers) if this is its first local endpoint.
// The interface is born inside the sandbox as req.IfaceName("eth"), with
// the endpoint's MAC and the network's MTU; the sandbox gives it its
// addresses. Without a sandbox key it is born in the host namespace under
// a temporary name for the sandbox to move in. No gateway: overlay
// networks are internal.
func (d *Driver) Join(req driverapi.JoinRequest) (_ *driverapi.JoinResult, err error) {
	what := "joining overlay endpoint " + req.EndpointID
	if err := optval.NoPublishedPorts(what, "overlay", "it is internal", req.Options); err != nil {
		return nil, err
	}
	n, err := d.lockNetwork(what, req.NetworkID)
	if err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	n.awaitDeletion()
	ep, ok := n.endpoints[req.EndpointID]
	switch {
	case n.deleted:
		return nil, types.NotFoundErrorf("%s: network %s not found", what, req.NetworkID)
	case !ok:
		return nil, driverapi.ErrNoEndpoint(req.EndpointID)
	case ep.joined:
		return nil, types.ForbiddenErrorf("%s: it is joined already", what)
	}

	ns, ifName, res, err := d.joinTarget(what, req)
	if err != nil {
		return nil, err
	}
	if ns != d.host {
		defer ns.Close()
	}
	created, err := d.ensureDataPlane(what, n)
	if err != nil {
		return nil, err
	}
	_, err = n.dp.Attach(dataplane.EndpointConfig{ID: ep.id, NS: ns, IfName: ifName, MAC: ep.mac,
		IPv4: ep.v4, IPv6: ep.v6, Bare: true})
	if err != nil {
		err = types.Wrapf(err, "%s", what)
		switch {
		case created:
			if derr := n.dp.Delete(); derr != nil {
				// Kept as dead: the next Join, DeleteNetwork, GC or Close
				// deletes it again, and no Join reuses it half-deleted.
				n.dead, n.dp = n.dp, nil
				return nil, errors.Join(err, types.Wrapf(derr, "%s: undoing the data plane", what))
			}
			n.dp = nil
		case !n.joined():
			d.retire(n) // taken back from retiring for this Join: give it back
		}
		return nil, err
	}
	ep.joined = true
	return res, nil
}

// joinTarget opens the namespace the interface is born in and names it
// there: the sandbox's, or the host's under a temporary name.
func (d *Driver) joinTarget(what string, req driverapi.JoinRequest) (*netnsutil.NS, string, *driverapi.JoinResult, error) {
	if req.SandboxKey == "" {
		h := fnv.New64a()
		h.Write([]byte(req.EndpointID))
		name := fmt.Sprintf("ovj%012x", h.Sum64()&(1<<48-1))
		return d.host, name, &driverapi.JoinResult{SrcName: name, DstPrefix: "eth"}, nil
	}
	ns, err := netnsutil.Open(req.SandboxKey)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", nil, types.NotFoundErrorf("%s: sandbox namespace %s not found", what, req.SandboxKey)
		}
		return nil, "", nil, types.InternalErrorf("%s: %w", what, err)
	}
	name := "eth0"
	if req.IfaceName != nil {
		name = req.IfaceName("eth")
	}
	return ns, name, &driverapi.JoinResult{DstName: name}, nil
}

// ensureDataPlane builds the network's data plane with its peers if it
// has none; created says it did. Caller holds n.mu.
func (d *Driver) ensureDataPlane(what string, n *network) (created bool, _ error) {
	if n.dp != nil {
		n.retiring = false // taken back before its background deletion began
		return false, nil
	}
	if err := n.retryDead(); err != nil {
		return false, types.Wrapf(err, "%s: deleting the earlier data plane of network %s", what, n.id)
	}
	vtep := d.localVTEP()
	if !vtep.IsValid() {
		return false, types.ForbiddenErrorf("%s: this host's VTEP address is not known", what)
	}
	dp, err := dataplane.Create(dataplane.Config{VNI: n.vni, HostNS: d.host, LocalVTEP: vtep, MTU: n.mtu,
		NSPath: filepath.Join(d.dir, n.id)})
	if err != nil {
		return false, types.Wrapf(err, "%s: building the data plane of network %s", what, n.id)
	}
	if _, err := dp.Reconcile(n.peerList()); err != nil {
		err = types.Wrapf(err, "%s: programming the peers of network %s", what, n.id)
		if derr := dp.Delete(); derr != nil {
			n.dead = dp // deleted again later, as a failed background deletion is
			err = errors.Join(err, types.Wrapf(derr, "%s: undoing the data plane", what))
		}
		return false, err
	}
	n.dp = dp
	return true, nil
}

// Leave unplugs the endpoint: it returns once the endpoint is cut off,
// its veth being deleted in the background (dataplane.Detach). The
// network's last local endpoint hands the data plane to a background
// deletion (retire.go). An endpoint not joined, or unknown, is success.
func (d *Driver) Leave(nid, eid string) error {
	n, err := d.lockNetwork("", nid)
	if err != nil {
		return nil
	}
	defer n.mu.Unlock()
	ep, ok := n.endpoints[eid]
	if !ok || !ep.joined {
		return nil
	}
	if n.dp != nil {
		if err := n.dp.Detach(eid); err != nil {
			return types.Wrapf(err, "leaving overlay endpoint %s", eid)
		}
	}
	ep.joined = false
	if n.dp != nil && !n.joined() {
		d.retire(n)
	}
	return nil
}
