package etcdproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// A member started with NetNS runs in that namespace and serves on its
// addresses (what #16's one-member-per-namespace clusters need).
func TestInNamespace(t *testing.T) {
	t.Parallel()
	ns := testutil.NewNamedNS(t, "etcd")
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	m := StartT(t, Options{NetNS: ns.Path(), Dial: dial,
		ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380"})
	inode := func(path string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if got, want := inode(fmt.Sprintf("/proc/%d/ns/net", m.PID())), inode(ns.Path()); got != want {
		t.Fatalf("the member runs in namespace %d, want %d", got, want)
	}
	if inode(fmt.Sprintf("/proc/%d/ns/net", os.Getpid())) == inode(ns.Path()) {
		t.Fatal("the test itself is in the member's namespace")
	}
}
