package osl

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/types"
)

// CutOff takes every address and every route off the link dstName and
// forgets the interface, leaving the link itself (up, named as it was) for
// its driver or the kernel to delete. It is for a namespace about to be
// unmounted that a process may still hold: the process is left with no
// address and no route, so no IP traffic, at the cost of a few netlink
// deletions, where setting the link down waits for an RCU grace period
// (DetachInterface: 3-5 times the cost of a whole Sandbox.Delete on this
// machine). Raw frames can still leave until the link is deleted. Gone
// already is nil.
func (s *Sandbox) CutOff(dstName string) error {
	if dstName == "lo" || dstName == "" {
		return types.BadRequestErrorf("cutting off interface %q in sandbox %s: invalid name", dstName, s.key)
	}
	op := fmt.Sprintf("cutting off interface %s in sandbox %s", dstName, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	link, err := s.nl.LinkByName(dstName)
	switch {
	case err != nil && isGone(err):
	case err != nil:
		return kernelErr(err, "%s: finding link", op)
	default:
		if err := s.removeAddrs(link, op); err != nil {
			return err
		}
		// Routes the kernel kept after the addresses went (it drops the
		// IPv4 ones with the last address) go too: with no route, the
		// process cannot even try.
		routes, err := s.nl.RouteList(link, netlink.FAMILY_ALL)
		if err != nil && !isGone(err) {
			return kernelErr(err, "%s: listing routes", op)
		}
		for i := range routes {
			if err := s.nl.RouteDel(&routes[i]); err != nil && !isGone(err) {
				return kernelErr(err, "%s: removing route %s", op, routes[i].Dst)
			}
		}
	}
	delete(s.ifaces, dstName)
	return nil
}

// removeAddrs deletes every address of link; op names the operation in
// errors. Gone already (the link, or an address) is success.
func (s *Sandbox) removeAddrs(link netlink.Link, op string) error {
	addrs, err := s.nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil && !isGone(err) {
		return kernelErr(err, "%s: listing addresses", op)
	}
	for i := range addrs {
		if err := s.nl.AddrDel(link, &addrs[i]); err != nil && !isGone(err) {
			return kernelErr(err, "%s: removing address %s", op, addrs[i].IPNet)
		}
	}
	return nil
}
