package nfwatch

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// nft runs the nft command inside ns (a child inherits the namespace of
// the thread that forks it), as another tool on the host would.
func nft(t *testing.T, ns *testutil.HostNS, args ...string) {
	t.Helper()
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command("nft", args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func waitSignal(t *testing.T, w *Watcher, what string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(5 * time.Second):
		t.Fatalf("no change reported after %s", what)
	}
}

func noSignal(t *testing.T, w *Watcher, what string) {
	t.Helper()
	// A short look only: the change counts checked afterwards are what
	// prove nothing was counted.
	select {
	case <-w.C():
		t.Fatalf("change reported after %s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// A foreign process's removal is reported, its additions are not, and
// this process's own transactions (additions and removals) never are.
func TestWatcherReportsForeignRemovals(t *testing.T) {
	ns := testutil.NewHostNS(t)
	w, err := Open(ns.NS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	nft(t, ns, "add table ip t1")
	nft(t, ns, "add chain ip t1 c")
	noSignal(t, w, "a foreign addition")
	nft(t, ns, "flush ruleset")
	waitSignal(t, w, "nft flush ruleset")
	if w.Changes() != 1 {
		t.Errorf("changes %d, want 1", w.Changes())
	}

	// Our own removal, over a netlink socket of this process.
	var c *nftables.Conn
	if err := ns.Do(func() error { c, err = nftables.New(nftables.AsLasting()); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	tab := c.AddTable(&nftables.Table{Name: "ours", Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.DelTable(tab)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	noSignal(t, w, "our own removal")

	// Many foreign removals before the reader looks make one signal.
	for i := 0; i < 3; i++ {
		nft(t, ns, "add table ip t2")
		nft(t, ns, "delete table ip t2")
	}
	waitSignal(t, w, "three removals")
	// Our own removal counted would show as one change too many once
	// every later event is read; the marker is read last.
	nft(t, ns, "add table ip marker")
	nft(t, ns, "delete table ip marker")
	deadline := time.Now().Add(5 * time.Second)
	for w.Changes() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.Changes() != 5 {
		t.Errorf("changes %d, want 5 (the foreign removals only)", w.Changes())
	}
}

// Notifications lost to a full buffer are reported as a change: the
// reader does not start until more was announced than the buffer holds.
func TestWatcherOverrunIsAChange(t *testing.T) {
	ns := testutil.NewHostNS(t)
	w, err := open(ns.NS, nil, 4096, false)
	if err != nil {
		t.Fatal(err)
	}
	w.isOurs = func(int) bool { return true } // only an overrun may signal
	var script strings.Builder
	script.WriteString("add table ip big\nadd chain ip big c\n")
	for i := 0; i < 500; i++ {
		script.WriteString("add rule ip big c counter\n")
	}
	dir := t.TempDir()
	path := dir + "/rules.nft"
	if err := writeFile(path, script.String()); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "-f", path)
	go w.loop()
	defer w.Close()
	waitSignal(t, w, "an overrun")
	if w.Overruns() == 0 {
		t.Error("no overrun counted")
	}
}

// Close ends the reader even while it waits for a message.
func TestWatcherCloseEndsReader(t *testing.T) {
	ns := testutil.NewHostNS(t)
	w, err := Open(ns.NS, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-w.done:
	default:
		t.Fatal("reader still running after Close")
	}
}

func TestDeletingAndGenPID(t *testing.T) {
	for msg, want := range map[uint16]bool{0: false, 2: true, 3: false, 5: true, 6: false, 8: true, 12: false, 14: true, 15: false, 28: true} {
		if deleting(msg) != want {
			t.Errorf("deleting(%d) = %v", msg, !want)
		}
	}
	// nfgenmsg, then NFTA_GEN_ID (u32), NFTA_GEN_PROC_PID (be32 4242).
	data := []byte{0, 0, 0, 0, 8, 0, 1, 0, 0, 0, 0, 7, 8, 0, 2, 0, 0, 0, 0x10, 0x92}
	if got := genPID(data); got != 4242 {
		t.Errorf("genPID = %d", got)
	}
	if got := genPID(data[:6]); got != 0 {
		t.Errorf("genPID of a cut message = %d", got)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
