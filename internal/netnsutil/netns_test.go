package netnsutil_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
)

func TestNewDoRemove(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "ns")
	ns, err := netnsutil.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	t.Cleanup(func() { _ = netnsutil.Remove(path) })

	cur, err := netnsutil.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if ns.Handle().Equal(cur.Handle()) {
		t.Fatal("new namespace is the current one")
	}

	// A veth pair made inside Do lives in the new namespace only.
	err = ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}); err != nil {
			return err
		}
		h, err := netns.Get()
		if err != nil {
			return err
		}
		defer h.Close()
		if !h.Equal(ns.Handle()) {
			t.Error("Do did not run in the namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("probe0"); err == nil {
		t.Fatal("probe0 leaked into the test's namespace")
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("probe0"); err != nil {
		t.Fatalf("probe0 not in the new namespace: %v", err)
	}

	if err := netnsutil.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("namespace file still there: %v", err)
	}
	// Removing again is "already gone", not an error.
	if err := netnsutil.Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// A thread that cannot be switched back is never handed to another
// goroutine: it stays locked, its goroutine exits, and the runtime ends
// it, so no thread of the process is left in the namespace.
func TestFailedSwitchBackDiscardsThread(t *testing.T) {
	ns := testutil.NewNamedNS(t, "ns").NS
	var st unix.Stat_t
	if err := unix.Stat(ns.Path(), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	threadsInNS := func() int {
		tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
		n := 0
		for _, f := range tasks {
			if l, err := os.Readlink(f); err == nil && l == want {
				n++
			}
		}
		return n
	}

	restore := netnsutil.FailSwitchBack(ns)
	err := ns.Do(func() error {
		if threadsInNS() != 1 {
			return errors.New("Do did not run in the namespace")
		}
		return nil
	})
	restore()
	if err == nil || !strings.Contains(err.Error(), "switching back") {
		t.Fatalf("Do with a failing switch back: %v, want the failure reported", err)
	}
	for deadline := time.Now().Add(5 * time.Second); threadsInNS() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d threads of the process are still in the namespace", threadsInNS())
		}
	}
	if err := ns.Do(func() error { return nil }); err != nil {
		t.Fatalf("Do after the restore: %v", err)
	}
}

// An entry after Close fails with ErrClosed instead of going through a
// descriptor number the process may already have given to another file;
// work that entered before Close finishes in the namespace.
func TestDoAfterCloseFails(t *testing.T) {
	testutil.RequireRoot(t)
	ns, err := netnsutil.NewUnmounted()
	if err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- ns.Do(func() error {
			close(inside)
			<-release
			_, err := netlink.LinkByName("lo") // still answered by the namespace entered
			return err
		})
	}()
	<-inside
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Do that entered before Close: %v", err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, netnsutil.ErrClosed) {
		t.Fatalf("Do after Close: %v, want ErrClosed", err)
	}
}
