package scale

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// pingFrom sends ICMP echo requests from inside ns to dst (IPv4 or IPv6)
// and waits for a reply, for up to timeout. It uses a raw socket (the
// tests run as root), so no ping binary and no ping_group_range are
// needed.
func pingFrom(ns *netnsutil.NS, dst string, timeout time.Duration) error {
	ip := net.ParseIP(dst)
	if ip == nil {
		return fmt.Errorf("ping: bad address %s", dst)
	}
	v4 := ip.To4() != nil
	return ns.Do(func() error {
		family, proto, echo, reply := unix.AF_INET, unix.IPPROTO_ICMP, byte(8), byte(0)
		var sa unix.Sockaddr
		if v4 {
			a := &unix.SockaddrInet4{}
			copy(a.Addr[:], ip.To4())
			sa = a
		} else {
			// The kernel fills in an ICMPv6 raw socket's checksum.
			family, proto, echo, reply = unix.AF_INET6, unix.IPPROTO_ICMPV6, 128, 129
			a := &unix.SockaddrInet6{}
			copy(a.Addr[:], ip.To16())
			sa = a
		}
		fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("ping: raw socket: %w", err)
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		id := uint16(fd) ^ 0x5a5a
		buf := make([]byte, 1500)
		deadline := time.Now().Add(timeout)
		for seq := uint16(1); time.Now().Before(deadline); seq++ {
			// A send may fail while the neighbour is unresolved; retry.
			_ = unix.Sendto(fd, echoRequest(echo, id, seq), 0, sa)
			for until := time.Now().Add(500 * time.Millisecond); time.Now().Before(until); {
				n, from, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					continue // timeout slice, or EINTR
				}
				var src net.IP
				switch f := from.(type) {
				case *unix.SockaddrInet4:
					src = net.IP(f.Addr[:])
				case *unix.SockaddrInet6:
					src = net.IP(f.Addr[:])
				}
				msg := buf[:n]
				if v4 {
					// An IPv4 raw socket hands over the IP header too.
					if n < 20 || n < int(buf[0]&0x0f)*4+8 {
						continue
					}
					msg = buf[int(buf[0]&0x0f)*4 : n]
				}
				if !src.Equal(ip) || len(msg) < 8 {
					continue
				}
				if msg[0] == reply && binary.BigEndian.Uint16(msg[4:]) == id {
					return nil
				}
			}
		}
		return fmt.Errorf("ping %s: no reply within %v", dst, timeout)
	})
}

func echoRequest(typ byte, id, seq uint16) []byte {
	b := make([]byte, 16)
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	return b
}

// expireNeighbours deletes every neighbour entry of h that is not
// permanent: what the kernel does to entries that went unused, done now
// instead of after minutes, so the next packet must resolve afresh.
func expireNeighbours(t *testing.T, h *netlink.Handle) {
	t.Helper()
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := h.NeighList(0, family)
		if err != nil {
			t.Fatalf("listing neighbours: %v", err)
		}
		for _, n := range neighs {
			if n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 || n.IP == nil {
				continue
			}
			if err := h.NeighDel(&n); err != nil && err != unix.ENOENT {
				t.Fatalf("deleting neighbour %s: %v", n.IP, err)
			}
		}
	}
}
