package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// Adopt takes over the data plane an earlier process built at
// cfg.NSPath, as it is: nothing in the kernel changes, so local
// endpoints keep talking to each other and to their peers while the
// process restarts. Its VXLAN device must carry cfg.VNI from
// cfg.LocalVTEP (a zero LocalVTEP takes the device's) on cfg.Port. No
// peer is recorded: the kernel's entries stay until a Reconcile with the
// whole set, which removes those no peer claims; AddPeer before it sets
// entries without removing any. Endpoints are taken back with
// AdoptEndpoint.
func Adopt(cfg Config) (_ *Network, err error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	cfg.LocalVTEP = cfg.LocalVTEP.Unmap()
	obj := fmt.Sprintf("network vni %d", cfg.VNI)
	switch {
	case cfg.VNI == 0 || cfg.VNI >= 1<<24:
		return nil, invalid("adopting", obj, "VNI must be 1 to %d", 1<<24-1)
	case cfg.NSPath == "":
		return nil, invalid("adopting", obj, "no namespace path")
	}
	n := &Network{cfg: cfg, eps: map[string]*attached{}}
	ok := false
	defer func() {
		if !ok {
			n.release()
		}
	}()
	if n.ns, err = netnsutil.Open(cfg.NSPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &ConflictError{Op: "adopting", Object: obj, Reason: "no data plane at " + cfg.NSPath, Err: err}
		}
		return nil, kernelErr("adopting", obj, err)
	}
	if n.nl, err = netlink.NewHandleAt(n.ns.Handle()); err != nil {
		return nil, kernelErr("adopting", obj, fmt.Errorf("netlink handle in network namespace: %w", err))
	}
	br, err := n.nl.LinkByName(BridgeName)
	if err != nil {
		return nil, &ConflictError{Op: "adopting", Object: obj, Reason: "the namespace has no bridge " + BridgeName, Err: err}
	}
	l, err := n.nl.LinkByName(vxlanName)
	if err != nil {
		return nil, &ConflictError{Op: "adopting", Object: obj, Reason: "the namespace has no VXLAN device", Err: err}
	}
	vx, isVX := l.(*netlink.Vxlan)
	if !isVX {
		return nil, &ConflictError{Op: "adopting", Object: obj, Reason: fmt.Sprintf("the namespace's %s is a %s, not a VXLAN device", vxlanName, l.Type())}
	}
	src, _ := netip.AddrFromSlice(vx.SrcAddr)
	switch {
	case vx.VxlanId != int(cfg.VNI) || vx.Port != cfg.Port:
		return nil, &ConflictError{Op: "adopting", Object: obj, Reason: "the namespace's VXLAN device has another VNI or port"}
	case cfg.LocalVTEP.IsValid() && src.Unmap() != cfg.LocalVTEP:
		return nil, &ConflictError{Op: "adopting", Object: obj,
			Reason: fmt.Sprintf("the VXLAN device sends from %s, not %s", src, cfg.LocalVTEP)}
	case vx.Attrs().MasterIndex != br.Attrs().Index:
		return nil, &ConflictError{Op: "adopting", Object: obj, Reason: "the VXLAN device is not a port of the bridge"}
	}
	n.cfg.LocalVTEP = src.Unmap()
	n.br, n.vx, n.mtu = br.Attrs().Index, vx.Attrs().Index, br.Attrs().MTU
	if err := n.openRaw(); err != nil {
		return nil, kernelErr("adopting", obj, fmt.Errorf("netlink socket in network namespace: %w", err))
	}
	if err := n.openReaper(); err != nil {
		return nil, kernelErr("adopting", obj, fmt.Errorf("netlink socket in network namespace: %w", err))
	}
	if err := n.reapLeftovers(); err != nil {
		return nil, kernelErr("adopting", obj, err)
	}
	if err := n.openAnnouncer(); err != nil {
		return nil, kernelErr("adopting", obj, err)
	}
	n.peer = newPeerSet(n.nl, n.vx, n.cfg.LocalVTEP)
	ok = true
	return n, nil
}

// AdoptEndpoint takes back a local endpoint an earlier process attached:
// its veth's bridge end must be a port of the bridge. ep.NS may be nil
// (the container's end is not touched). It returns the endpoint's Peer.
func (n *Network) AdoptEndpoint(ep EndpointConfig) (Peer, error) {
	obj := "endpoint " + ep.ID
	if ep.ID == "" || len(ep.MAC) != 6 || (!ep.IPv4.IsValid() && !ep.IPv6.IsValid()) {
		return Peer{}, invalid("adopting", obj, "an ID, a MAC and an address are required")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return Peer{}, &ConflictError{Op: "adopting", Object: obj, Reason: "the network's data plane is deleted"}
	}
	if a, ok := n.eps[ep.ID]; ok {
		return a.peer, nil
	}
	a := &attached{cfg: ep, hostName: hostVethName(ep.ID),
		peer: Peer{ID: ep.ID, MAC: ep.MAC, IPv4: ep.IPv4.Addr(), IPv6: ep.IPv6.Addr(), VTEP: n.cfg.LocalVTEP}}
	l, err := n.nl.LinkByName(a.hostName)
	if err != nil {
		if gone(err) {
			return Peer{}, &ConflictError{Op: "adopting", Object: obj, Reason: "its veth is gone", Err: err}
		}
		return Peer{}, kernelErr("adopting", obj, err)
	}
	if l.Attrs().Group == reapGroup {
		return Peer{}, &ConflictError{Op: "adopting", Object: obj, Reason: "its veth was detached"}
	}
	if l.Attrs().MasterIndex != n.br {
		return Peer{}, &ConflictError{Op: "adopting", Object: obj, Reason: a.hostName + " is not a port of the bridge"}
	}
	n.eps[ep.ID] = a
	return a.peer, nil
}

// Release closes the process's handles on the data plane and leaves the
// kernel as it is, for a later process to Adopt, except that the veths
// of detached endpoints are deleted first (the reaper is flushed). The Network is unusable
// afterwards.
func (n *Network) Release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.deleted {
		n.release()
		n.deleted = true
	}
}

func (n *Network) release() {
	if n.reap != nil {
		_ = n.reap.Close() // what it could not delete, a later Adopt or RemoveLeftover does
	}
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	n.ann.close()
	n.closeSockets()
	if n.ns != nil {
		n.ns.Close()
		n.ns = nil
	}
}

// reapLeftovers queues the links an earlier process left in reapGroup.
func (n *Network) reapLeftovers() error {
	ls, err := n.nl.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	k := 0
	for _, l := range ls {
		if l.Attrs().Group == reapGroup {
			k++
		}
	}
	if k > 0 {
		n.reap.Queue(k)
	}
	return nil
}
