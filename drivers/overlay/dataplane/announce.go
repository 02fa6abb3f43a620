package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// A local container that sent to a remote address before its peer was
// programmed holds an unresolved neighbour entry, which the kernel
// retries only every retrans_time (1 s by default): its first packet
// would wait that long after the peer appears. So when a peer is
// programmed, the data plane announces it on the bridge to the local
// endpoints: a broadcast unsolicited ARP reply for its IPv4 address and
// an unsolicited neighbour advertisement (override, not solicited) to
// all nodes for its IPv6 address. A container with an entry for the
// address takes the MAC (as stale) and sends what it queued at once; one
// without an entry ignores it (arp_accept and accept_untracked_na are
// off by default), so nothing is added to anyone's table. The frames
// reach the VXLAN port too, where the proxy drops ARP replies and no FDB
// entry matches the all-nodes group: they never leave the host. The
// bridge does not learn from what it sends itself, so the peer's MAC is
// not mistaken for a local port's.
//
// The announcement is best effort: if sending fails, the container
// resolves at its next retry, as without it.
type announcer struct {
	fd int // AF_PACKET socket opened in the network namespace
	br int // bridge index
}

func (n *Network) openAnnouncer() error {
	fd := -1
	err := n.ns.Do(func() (err error) {
		// Protocol 0: the socket sends only and receives nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("opening packet socket: %w", err)
	}
	n.ann = &announcer{fd: fd, br: n.br}
	return nil
}

func (a *announcer) close() {
	if a != nil && a.fd >= 0 {
		unix.Close(a.fd)
		a.fd = -1
	}
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// announce sends p's announcements; the first error is returned after
// trying both.
func (a *announcer) announce(p Peer) error {
	var first error
	if p.IPv4.IsValid() {
		first = a.send(garp(p.MAC, p.IPv4), broadcastMAC)
	}
	if p.IPv6.IsValid() {
		if err := a.send(unsolicitedNA(p.MAC, p.IPv6), net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}); first == nil {
			first = err
		}
	}
	return first
}

func (a *announcer) send(frame []byte, dst net.HardwareAddr) error {
	// sll_protocol is in network byte order, as in the frame.
	sa := &unix.SockaddrLinklayer{Ifindex: a.br, Halen: 6,
		Protocol: binary.NativeEndian.Uint16(frame[12:14])}
	copy(sa.Addr[:], dst)
	return unix.Sendto(a.fd, frame, 0, sa)
}

// garp builds a broadcast ARP reply announcing ip at mac (sender and
// target both ip).
func garp(mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], broadcastMAC)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:], 1)             // Ethernet
	binary.BigEndian.PutUint16(arp[2:], unix.ETH_P_IP) // IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 2) // reply
	ip4 := ip.As4()
	copy(arp[8:14], mac)
	copy(arp[14:18], ip4[:])
	copy(arp[18:24], mac)
	copy(arp[24:28], ip4[:])
	return f
}

// unsolicitedNA builds a neighbour advertisement of ip at mac to all
// nodes (ff02::1), with the override flag, from ip itself.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	const icmpLen = 32 // header 4, flags 4, target 16, target link-layer option 8
	f := make([]byte, 14+40+icmpLen)
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
	h := f[14:54]
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], icmpLen)
	h[6], h[7] = unix.IPPROTO_ICMPV6, 255
	src, dst := ip.As16(), netip.MustParseAddr("ff02::1").As16()
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])
	m := f[54:]
	m[0] = 136            // neighbour advertisement
	m[4] = 0x20           // override
	copy(m[8:24], src[:]) // target
	m[24], m[25] = 2, 1   // target link-layer address, 8 bytes
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:], icmp6Checksum(src, dst, m))
	return f
}

func icmp6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var pseudo [8]byte
	binary.BigEndian.PutUint32(pseudo[0:], uint32(len(msg)))
	pseudo[7] = unix.IPPROTO_ICMPV6
	add(pseudo[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
