package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// Join attaches the endpoint to a sandbox with a veth pair whose host end
// is a port of the network's bridge.
//
// With a SandboxKey, the container end is created directly inside that
// namespace, named req.IfaceName(prefix), with the endpoint's MAC and the
// network's MTU, in the same netlink request as the host end; the result's
// DstName names it. Without one (a sandbox whose key is set later), both
// ends are made in the host namespace and the result's SrcName/DstPrefix
// tell the sandbox to move the container end in itself. Either way the
// sandbox, not the driver, sets addresses, routes and link state inside.
func (d *Driver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	n, ep, err := d.reservePort(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	c, brIndex, nb := n.cfg, n.bridgeIndex, ep.neighbours()
	d.mu.Unlock()

	veth, res, err := d.attach(c, brIndex, nb, req)

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		n.ports.inUse--
		return nil, err
	}
	ep.hostIfName, ep.hostIfIndex = veth.Name, veth.Index
	return res, nil
}

// attach does Join's kernel work, undoing all of it on failure.
func (d *Driver) attach(c *networkConfig, brIndex int, nb neighbours, req driverapi.JoinRequest) (_ *netlink.Veth, _ *driverapi.JoinResult, err error) {
	var rollback undo.Stack
	success := false
	defer func() {
		if uerr := rollback.Unless(&success); uerr != nil {
			err = errors.Join(err, fmt.Errorf("rolling back join of endpoint %s: %w", req.EndpointID, uerr))
		}
	}()

	var sb *netnsutil.NS
	peerName := ""
	if req.SandboxKey != "" {
		sb, err = netnsutil.Open(req.SandboxKey)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, types.NotFoundErrorf("joining bridge endpoint %s: sandbox namespace %s not found", req.EndpointID, req.SandboxKey)
			}
			return nil, nil, types.InternalErrorf("joining bridge endpoint %s: %w", req.EndpointID, err)
		}
		defer sb.Close()
		if req.IfaceName != nil {
			peerName = req.IfaceName(c.ContainerIfacePrefix)
		} else {
			peerName = c.ContainerIfacePrefix + "0"
		}
		if err := names.Iface(peerName); err != nil {
			return nil, nil, types.Wrapf(err, "joining bridge endpoint %s", req.EndpointID)
		}
	}

	veth, err := d.addVeth(c, nb.mac, peerName, sb, endpointTag(req.EndpointID))
	if err != nil {
		return nil, nil, types.Wrapf(err, "joining bridge endpoint %s", req.EndpointID)
	}
	// Deleting the host end deletes the peer too, wherever it is.
	rollback.Push(func() error { return d.delLinkByName(veth.Name) })
	if err := d.step("veth"); err != nil {
		return nil, nil, err
	}

	if err := d.enslaveUp(veth.Index, brIndex); err != nil {
		if errors.Is(err, unix.EXFULL) {
			// Ports the driver does not count (someone else's, on an
			// adopted bridge) filled it.
			return nil, nil, fmt.Errorf("%w: %w", errBridgeFull(c, req.EndpointID), err)
		}
		return nil, nil, types.InternalErrorf("joining bridge endpoint %s: adding %s to bridge %s: %w", req.EndpointID, veth.Name, c.BridgeName, err)
	}
	if err := d.step("master"); err != nil {
		return nil, nil, err
	}

	// No proxy is ever run (whatever EnableUserlandProxy says), so a
	// container reaching its own published port is DNATed back out of the
	// port it came in on: the port is set to allow that hairpin turn. Proxy
	// ARP and neighbour entries: neigh.go. The FDB entry goes with the
	// veth; the neighbour entries need their undo.
	rollback.Push(func() error { return d.forgetNeighbours(c, brIndex, nb.ips) })
	if err := d.programPort(c, brIndex, veth.Index, nb); err != nil {
		return nil, nil, types.Wrapf(err, "joining bridge endpoint %s", req.EndpointID)
	}

	res := &driverapi.JoinResult{}
	if sb != nil {
		res.DstName = peerName
	} else {
		res.SrcName = veth.PeerName
		res.DstPrefix = c.ContainerIfacePrefix
	}
	if !c.Internal {
		// Internal networks reach nothing beyond the bridge: no default route.
		res.Gateway = gatewayIPv4(c)
		if c.EnableIPv6 {
			res.GatewayIPv6 = gatewayIPv6(c)
		}
	}
	success = true
	return veth, res, nil
}

// addVeth creates the pair: the host end up, named veth<7 hex>; the peer
// named peerName (random like the host end when empty) with the
// endpoint's MAC, inside sb when given. The host end carries alias as its
// tag. Host-end name clashes are retried.
func (d *Driver) addVeth(c *networkConfig, mac net.HardwareAddr, peerName string, sb *netnsutil.NS, alias string) (*netlink.Veth, error) {
	var lastErr error
	flushed := false
	for range 3 {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "veth" + randomHex7()
		attrs.MTU = c.Mtu
		// Made down: IPv6 goes off on it first (portIPv6Off).
		v := &netlink.Veth{
			LinkAttrs:        attrs,
			PeerName:         peerName,
			PeerHardwareAddr: mac,
			PeerMTU:          uint32(c.Mtu),
			PeerTxQLen:       -1,
		}
		if v.PeerName == "" {
			v.PeerName = "veth" + randomHex7()
		}
		if sb != nil {
			v.PeerNamespace = netlink.NsFd(sb.Fd())
		}
		err := d.nl.LinkAdd(v)
		if err == nil {
			if v.Index == 0 {
				// LinkAdd reads the index back by name; without it nothing
				// below can address the link, so do not keep it.
				_ = d.delLinkByName(v.Name)
				return nil, types.InternalErrorf("creating veth %s: cannot read it back", v.Name)
			}
			// The kernel ignores an alias given at creation; set it now.
			if err := d.nl.LinkSetAlias(v, alias); err != nil {
				_ = d.delLinkByName(v.Name)
				return nil, types.InternalErrorf("tagging veth %s: %w", v.Name, err)
			}
			if err := d.portIPv6Off(v.Name); err != nil {
				_ = d.delLinkByName(v.Name)
				return nil, types.InternalErrorf("turning ipv6 off on veth %s: %w", v.Name, err)
			}
			return v, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, types.InternalErrorf("creating veth %s/%s: %w", v.Name, v.PeerName, err)
		}
		lastErr = err
		// EEXIST is either our random host name or the peer name inside
		// the sandbox; only the first is worth another try.
		if _, lerr := d.nl.LinkByName(v.Name); isLinkNotFound(lerr) {
			if !flushed && sb != nil {
				// Most likely the veth of a Leave from this sandbox that
				// the reaper has not deleted yet: wait for it, try again.
				flushed = true
				_ = d.reaper.flush()
				continue
			}
			return nil, types.ForbiddenErrorf("creating veth: interface %s already exists in the sandbox: %w", v.PeerName, err)
		}
	}
	return nil, types.InternalErrorf("creating veth: no free name after 3 tries: %w", lastErr)
}

func gatewayIPv4(c *networkConfig) net.IP {
	if c.DefaultGatewayIPv4 != nil {
		return types.GetIPCopy(c.DefaultGatewayIPv4)
	}
	if c.AddressIPv4 != nil {
		return types.GetIPCopy(c.AddressIPv4.IP)
	}
	return nil
}

func gatewayIPv6(c *networkConfig) net.IP {
	switch {
	case c.DefaultGatewayIPv6 != nil:
		return types.GetIPCopy(c.DefaultGatewayIPv6)
	case c.AddressIPv6 != nil:
		return types.GetIPCopy(c.AddressIPv6.IP)
	default:
		return types.GetIPCopy(bridgeIPv6LinkLocal.IP)
	}
}

// Leave cuts the endpoint off at once (the host end goes down) and hands
// the veth pair to the reaper, which deletes it in the background within
// a few tens of ms (see reaper.go for why). An unknown network or
// endpoint, an endpoint not joined, or a veth already gone (its sandbox
// destroyed) all mean there is nothing left to do: nil.
func (d *Driver) Leave(nid, eid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	if n == nil {
		d.mu.Unlock()
		return nil
	}
	ep := n.endpoints[eid]
	if ep == nil || ep.hostIfIndex == 0 && !ep.busy {
		d.mu.Unlock()
		return nil
	}
	if ep.busy {
		d.mu.Unlock()
		return types.ForbiddenErrorf("leaving bridge endpoint %s: a join or leave is in progress", eid)
	}
	ep.busy = true
	idx := ep.hostIfIndex
	c, brIndex, ips := n.cfg, n.bridgeIndex, ep.neighbours().ips
	d.mu.Unlock()

	ticket, err := d.reaper.retire(idx)
	if err == nil {
		// Left behind, an entry would answer for an address now free;
		// one that a failure here leaves is collected as garbage.
		err = d.forgetNeighbours(c, brIndex, ips)
		d.mu.Lock()
		ep.hostIfName, ep.hostIfIndex = "", 0
		n.ports.retire(ticket)
		d.mu.Unlock()
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		return types.Wrapf(err, "leaving bridge endpoint %s", eid)
	}
	return nil
}

func randomHex7() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)[:7]
}
