package libnetwork_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// pingFrom sends ICMP echo requests from inside ns to dst and waits for a
// reply, for up to timeout. It uses a raw socket (the tests run as root),
// so no ping binary and no ping_group_range are needed.
func pingFrom(ns *netnsutil.NS, dst string, timeout time.Duration) error {
	ip := net.ParseIP(dst).To4()
	if ip == nil {
		return fmt.Errorf("ping: %s is not ipv4", dst)
	}
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return fmt.Errorf("ping: raw socket: %w", err)
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{}
		copy(sa.Addr[:], ip)
		id := uint16(fd) ^ 0x5a5a
		buf := make([]byte, 1500)
		deadline := time.Now().Add(timeout)
		for seq := uint16(1); time.Now().Before(deadline); seq++ {
			// A send may fail while the neighbour is unresolved; retry.
			_ = unix.Sendto(fd, echoRequest(id, seq), 0, sa)
			for until := time.Now().Add(500 * time.Millisecond); time.Now().Before(until); {
				n, from, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					continue // timeout slice, or EINTR
				}
				src, ok := from.(*unix.SockaddrInet4)
				if !ok || net.IP(src.Addr[:]).String() != ip.String() || n < 28 {
					continue
				}
				ihl := int(buf[0]&0x0f) * 4
				if n < ihl+8 {
					continue
				}
				icmp := buf[ihl:n]
				if icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id {
					return nil
				}
			}
		}
		return fmt.Errorf("ping %s: no reply within %v", dst, timeout)
	})
}

func echoRequest(id, seq uint16) []byte {
	b := make([]byte, 16)
	b[0] = 8 // echo request
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
