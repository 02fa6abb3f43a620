package portmapper

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// ErrPortInUse is wrapped by a Reserver when the port is taken.
var ErrPortInUse = errors.New("port is already allocated")

// Reserver holds host ports for published bindings.
type Reserver interface {
	// Reserve takes proto port on ip (unspecified: every address of ip's
	// family) and holds it until the returned Closer is closed. A port some
	// socket already holds fails with an error wrapping ErrPortInUse.
	Reserve(proto types.Protocol, ip net.IP, port uint16) (io.Closer, error)
	// EphemeralRange returns the bounds of the port range host ports are
	// chosen from when a binding asks for none.
	EphemeralRange() (lo, hi uint16, err error)
}

// NSReserver reserves ports with real sockets opened inside a namespace
// (a socket belongs to the namespace it was created in, whatever thread
// later closes it): TCP sockets listen, UDP sockets are bound, SCTP
// sockets listen where the kernel has SCTP. Without kernel SCTP the
// reservation is only the PortMapper's in-memory one: nothing stops a host
// process from taking that port, but no other mapping gets it either.
//
// The sockets are plain file descriptors, not Go net listeners: they never
// accept or read (the DNAT rules steer traffic away from them), so they
// need no goroutine or poller registration.
type NSReserver struct {
	NS *netnsutil.NS
}

var errNoSCTP = errors.New("kernel has no sctp support")

type fdCloser int

// Close frees the port at once. A child forked by another goroutine holds
// a copy of every descriptor until it execs (CLOEXEC closes it only then),
// which would keep the socket, and so the port, past Close; holding
// ForkLock as a reader waits out any fork under way.
func (f fdCloser) Close() error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	return unix.Close(int(f))
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Reserve opens and binds the socket inside the namespace.
func (r NSReserver) Reserve(proto types.Protocol, ip net.IP, port uint16) (io.Closer, error) {
	var fd int
	err := r.NS.Do(func() error {
		var err error
		fd, err = bindSocket(proto, ip, port)
		return err
	})
	switch {
	case errors.Is(err, errNoSCTP):
		return nopCloser{}, nil
	case errors.Is(err, unix.EADDRINUSE):
		return nil, fmt.Errorf("%w: %v", ErrPortInUse, err)
	case err != nil:
		return nil, err
	}
	return fdCloser(fd), nil
}

func bindSocket(proto types.Protocol, ip net.IP, port uint16) (int, error) {
	domain := unix.AF_INET
	var sa unix.Sockaddr
	if v4 := ip.To4(); v4 != nil || ip == nil {
		a := &unix.SockaddrInet4{Port: int(port)}
		if v4 != nil {
			copy(a.Addr[:], v4)
		}
		sa = a
	} else {
		domain = unix.AF_INET6
		a := &unix.SockaddrInet6{Port: int(port)}
		copy(a.Addr[:], ip.To16())
		sa = a
	}
	typ, p := unix.SOCK_STREAM, unix.IPPROTO_TCP
	switch proto {
	case types.UDP:
		typ, p = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	case types.SCTP:
		p = unix.IPPROTO_SCTP
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, p)
	if err != nil {
		if proto == types.SCTP && (errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT)) {
			return -1, errNoSCTP
		}
		return -1, fmt.Errorf("opening %s socket: %w", proto, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if domain == unix.AF_INET6 {
		// [::]:port must not also take 0.0.0.0:port: the IPv4 side of a
		// binding has its own reservation.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return -1, fmt.Errorf("setting IPV6_V6ONLY: %w", err)
		}
	}
	if typ == unix.SOCK_STREAM {
		// As any TCP server does, so connections of a previous holder in
		// TIME_WAIT do not block the port; a listening socket still
		// excludes every other listener.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return -1, fmt.Errorf("setting SO_REUSEADDR: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("binding %s: %w", proto, err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 1); err != nil {
			return -1, fmt.Errorf("listening %s: %w", proto, err)
		}
	}
	ok = true
	return fd, nil
}

// EphemeralRange reads net.ipv4.ip_local_port_range of the namespace.
func (r NSReserver) EphemeralRange() (uint16, uint16, error) {
	var b []byte
	err := r.NS.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		return err
	})
	if err != nil {
		return 0, 0, types.InternalErrorf("reading ephemeral port range in %s: %w", r.NS.Path(), err)
	}
	return parseRange(string(b))
}

func parseRange(s string) (uint16, uint16, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, types.InternalErrorf("parsing ephemeral port range %q", s)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err := errors.Join(err1, err2); err != nil || lo == 0 || lo > hi {
		return 0, 0, types.InternalErrorf("parsing ephemeral port range %q: %w", s, err)
	}
	return uint16(lo), uint16(hi), nil
}
