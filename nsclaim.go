package libnetwork

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// hostClaimName is an abstract unix socket name. Abstract names live in a
// network namespace, so binding one claims the namespace for this
// controller, and the kernel frees it when the socket closes or the
// process dies: a crash never leaves a stale claim.
const hostClaimName = "@opencnm-libnetwork-controller"

// claimHostNS makes sure no other controller (of this process or another)
// works in host. Garbage collection removes the bridges, veths, rules and
// port map elements it recognises as the library's own that its store
// does not know, so a second controller in one namespace would tear down
// the first one's networks at its start. Without root a controller makes
// nothing in the kernel and claims nothing.
func claimHostNS(host *netnsutil.NS, path string) (int, error) {
	if os.Geteuid() != 0 {
		return -1, nil
	}
	fd := -1
	err := host.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: hostClaimName}); err != nil {
			unix.Close(fd)
			fd = -1
			return err
		}
		return nil
	})
	if errors.Is(err, unix.EADDRINUSE) {
		return -1, types.ForbiddenErrorf("another libnetwork controller already works in network namespace %s (each host namespace has one; a second would collect the first one's networks as garbage)", nsName(path))
	}
	if err != nil {
		return -1, types.InternalErrorf("claiming network namespace %s for this controller: %w", nsName(path), err)
	}
	return fd, nil
}

// releaseHostNS closes the claim so that the next controller's claim
// succeeds at once. A child forked by another goroutine holds a copy of
// every descriptor until it execs (CLOEXEC closes it only then); holding
// ForkLock as a reader waits out any fork under way, so no copy outlives
// the close.
func releaseHostNS(fd int) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	unix.Close(fd)
}

func nsName(path string) string {
	if path == "" {
		return fmt.Sprintf("of process %d", os.Getpid())
	}
	return path
}
