package crash

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// An iptables-restore a controller started must not outlive it: one that
// commits its script after a restarted controller has read the rules
// makes the two disagree (the crash test saw published ports left without
// their DNAT rules that way). The processes get SIGKILL when their parent
// dies. Checked on the warm one the firewall keeps idle (blocked on its
// stdin): it is handed to this process (a child subreaper) and must have
// died by the signal, not by reading the end of its script and running it.

const (
	orphanChildEnv = "CNM_ORPHAN_CHILD" // host namespace path: TestOrphanChild runs a controller there
	orphanDirEnv   = "CNM_ORPHAN_DIR"   // the child's ExecRoot and DataDir parent, the parent test's temp dir
)

// TestOrphanChild is a no-op unless TestIptablesDiesWithController started
// this binary: then it starts a controller, says so and waits to be killed.
func TestOrphanChild(t *testing.T) {
	host := os.Getenv(orphanChildEnv)
	if host == "" {
		return
	}
	// Not t.TempDir(): the child is killed, so its cleanup never runs; the
	// parent test's temp dir goes when the parent ends.
	dir := os.Getenv(orphanDirEnv)
	if _, err := libnetwork.New(config.OptionHostNetNS(host), config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib"))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	time.Sleep(60 * time.Second)
	os.Exit(2)
}

func TestIptablesDiesWithController(t *testing.T) {
	host := testutil.NewHostNS(t)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("becoming a child subreaper: %v", err)
	}
	defer func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanChildEnv+"="+host.Path(), orphanDirEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	idle := map[int]string{} // not reaped yet
	waited := false
	defer func() { // whatever failed, nothing is left running or stopped
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		for pid := range idle {
			_ = unix.Kill(pid, unix.SIGKILL)
			_, _ = unix.Wait4(pid, nil, 0, nil)
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("controller process: %q, %v", line, err)
	}
	// The idle process is started right after the one New used.
	for deadline := time.Now().Add(3 * time.Second); len(idle) == 0; time.Sleep(5 * time.Millisecond) {
		if idle, err = childrenOf(cmd.Process.Pid); err != nil || time.Now().After(deadline) {
			t.Fatalf("no idle iptables-restore under the controller process: %v", err)
		}
	}
	// Stopped, an idle process cannot see its stdin close when the
	// controller dies and exit by itself: only the parent-death signal
	// (SIGKILL reaches stopped processes too) can end it.
	for pid := range idle {
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, pid)
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waited = true
	// A stopped process cannot run its script: if it ends without
	// SIGCONT, a signal (SIGKILL) ended it. Which process reaps it is a
	// race: the dying controller's own wait may still collect it (its
	// parent thread's death signals it while other threads live), else
	// it is handed to this process.
	for pid, name := range idle {
		if err := waitEnded(pid, 10*time.Second); err != nil {
			t.Errorf("%s (pid %d) outlived the killed controller: %v", name, pid, err)
			continue
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err == nil && (!ws.Signaled() || ws.Signal() != unix.SIGKILL) {
			t.Errorf("%s (pid %d) ended by exit status %d, not SIGKILL", name, pid, ws.ExitStatus())
		} else if err != nil && err != unix.ECHILD {
			t.Fatalf("reaping %s (pid %d): %v", name, pid, err)
		}
		delete(idle, pid)
	}
}

// waitEnded waits until pid is a zombie or gone.
func waitEnded(pid int, within time.Duration) error {
	for deadline := time.Now().Add(within); ; time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil // gone: reaped already
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still running after %v: %s", within, stat)
		}
	}
}

// waitStopped waits until pid is in the stopped state.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// "pid (comm) S ...": the state follows the command's closing parenthesis.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " T") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop: %s", pid, stat)
		}
	}
}

// childrenOf maps the processes whose parent is ppid to their command.
func childrenOf(ppid int) (map[int]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	want := fmt.Sprintf("PPid:\t%d\n", ppid)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil || !strings.Contains(string(status), want) {
			continue // gone meanwhile, or not its child
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(string(status), "Name:\t"), "\n")
		out[pid] = name
	}
	return out, nil
}
