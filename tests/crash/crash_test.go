package crash

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// The crash test runs the controller in a child process (this test binary
// again, with crashChildEnv set, running TestCrashChild) that loops over
// random operations until the parent kills it with SIGKILL at a random
// moment. After every kill the parent starts a controller on the same
// host namespace, ExecRoot and DataDir and checks that what the store says
// and what the kernel holds agree (checkConsistent).
const (
	crashChildEnv  = "CNM_CRASH_CHILD"  // "1": TestCrashChild is the worker
	crashHostEnv   = "CNM_CRASH_HOST"   // host namespace path
	crashExecEnv   = "CNM_CRASH_EXEC"   // ExecRoot
	crashDataEnv   = "CNM_CRASH_DATA"   // DataDir
	crashActiveEnv = "CNM_CRASH_ACTIVE" // file listing the sandboxes to keep (JSON array of IDs)
	crashSeedEnv   = "CNM_CRASH_SEED"   // the child's random seed
)

// crashKills is how many times the parent kills a child (CRASH_KILLS
// overrides the default, kept small so `make test` stays fast).
func crashKills() int {
	if n, err := strconv.Atoi(os.Getenv("CRASH_KILLS")); err == nil && n > 0 {
		return n
	}
	return 15
}

// crashBudget bounds the kill loop's wall time whatever CRASH_KILLS says
// (CRASH_BUDGET, a duration, overrides it for long soak runs).
func crashBudget() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CRASH_BUDGET")); err == nil && d > 0 {
		return d
	}
	return 40 * time.Second
}

type crashDirs struct{ host, exec, data, active string }

// crashActive is what the child last asked the next start to keep: each
// sandbox's ID with the ports it publishes (OptionPortMapping), which a
// runtime passes again on a live restore.
type crashActive map[string][]types.PortBinding

func (d crashDirs) options(active crashActive) []config.Option {
	keep := map[string]any{}
	for id, ports := range active {
		var opts []libnetwork.SandboxOption
		if len(ports) > 0 {
			opts = append(opts, libnetwork.OptionPortMapping(ports))
		}
		keep[id] = opts
	}
	return []config.Option{
		config.OptionHostNetNS(d.host), config.OptionExecRoot(d.exec), config.OptionDataDir(d.data),
		config.OptionPluginDirs(filepath.Join(d.exec, "plugins")),
		config.OptionActiveSandboxes(keep),
	}
}

// readActive returns the sandboxes the child last asked to keep.
func readActive(path string) (crashActive, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return crashActive{}, nil
	}
	if err != nil {
		return nil, err
	}
	active := crashActive{}
	return active, json.Unmarshal(b, &active)
}

// writeActive replaces the list atomically (a kill never leaves half a file).
func writeActive(path string, active crashActive) error {
	b, err := json.Marshal(active)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func TestCrashRecovery(t *testing.T) {
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	makeCrashParent(t, host)
	root := testrig.TmpfsDir(t)
	dirs := crashDirs{host: host.Path(), exec: filepath.Join(root, "run"), data: filepath.Join(root, "lib"),
		active: filepath.Join(root, "active.json")}
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (CRASH_SEED reproduces the parent's timing; children's seeds follow from it)", seed)
	rng := rand.New(rand.NewSource(seed))

	var c *libnetwork.Controller
	t.Cleanup(func() {
		if c != nil {
			testrig.Teardown(t, c)
			c.Stop()
		}
	})
	var active crashActive
	start := func() *libnetwork.Controller {
		t.Helper()
		var err error
		if active, err = readActive(dirs.active); err != nil {
			t.Fatal(err)
		}
		ctl, err := libnetwork.New(dirs.options(active)...)
		if err != nil {
			t.Fatalf("New after a kill: %v", err)
		}
		return ctl
	}

	began := time.Now()
	kills, stats := 0, crashStats{ops: map[string]int{}}
	for i := 0; i < crashKills(); i++ {
		if time.Since(began) > crashBudget() {
			t.Logf("time budget spent after %d kills", i)
			break
		}
		// One kill in five lands early: during the child's own restore.
		early := rng.Intn(5) == 0
		runCrashChild(t, dirs, seed+int64(i), early, rng, stats.ops)
		kills++
		c = start()
		published := checkConsistent(t, host, c, dirs, active, &stats)
		c.Stop()
		c = nil
		checkPortRecords(t, dirs, published)
		if t.Failed() {
			t.Fatalf("inconsistent after kill %d (child seed %d)", i+1, seed+int64(i))
		}
	}
	t.Logf("%d kills in %v; children ran operations %v; state seen after kills: %s",
		kills, time.Since(began).Round(time.Millisecond), stats.ops, stats)
	// Both macvlan networks exist from a child's first steps on, so of
	// many joins some are of each. Counted in joins, not kills: under load
	// a child may be killed before it has joined much.
	joins := stats.ops["join"] + stats.ops["join-macvlan"] + stats.ops["join-macvlan-parent"]
	if joins >= 40 && (stats.ops["join-macvlan"] == 0 || stats.ops["join-macvlan-parent"] == 0) {
		t.Errorf("the children joined no endpoint of a macvlan network (internal or on %s): %v", crashParent, stats.ops)
	}

	// Everything comes apart to nothing.
	c = start()
	checkConsistent(t, host, c, dirs, active, &stats)
	testrig.Teardown(t, c)
	c.Stop()
	c = nil
	testrig.HostLinksSettle(t, host, "lo", crashParent)
	if entries, _ := os.ReadDir(filepath.Join(dirs.exec, "netns")); len(entries) > 0 {
		t.Errorf("namespace files left after teardown: %v", entries)
	}
	// The shared chains (cnm-global: DOCKER, DOCKER-USER, isolation) stay,
	// as Docker's do; nothing of a network or endpoint may.
	for _, rule := range cnmRules(t, host) {
		if !strings.Contains(rule, "cnm-global") {
			t.Errorf("rule left after teardown: %s", rule)
		}
	}
}

// runCrashChild starts a worker, kills it at a random moment and adds the
// operations it reported finishing to ops, by name.
func runCrashChild(t *testing.T, dirs crashDirs, seed int64, early bool, rng *rand.Rand, ops map[string]int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashHostEnv+"="+dirs.host, crashExecEnv+"="+dirs.exec,
		crashDataEnv+"="+dirs.data, crashActiveEnv+"="+dirs.active, crashSeedEnv+"="+strconv.FormatInt(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var mu sync.Mutex
	var lines []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			switch {
			case line == "ready":
				once.Do(func() { close(ready) })
			case strings.HasPrefix(line, "op "):
				ops[strings.TrimPrefix(line, "op ")]++
			default:
				lines = append(lines, line)
			}
			mu.Unlock()
		}
	}()
	done := make(chan error, 1)
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		done <- cmd.Wait()
	}()
	exited := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("crash child exited by itself (%v) before the kill:\nstdout: %s\nstderr: %s",
			err, strings.Join(lines, "\n"), stderr.String())
	}
	var sleep time.Duration
	if early {
		sleep = time.Duration(rng.Intn(150)) * time.Millisecond
	} else {
		select {
		case <-ready:
		case err := <-done:
			exited(err)
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("crash child not ready after 30 s: %s", stderr.String())
		}
		sleep = time.Duration(rng.Intn(500)) * time.Millisecond
	}
	select {
	case err := <-done:
		exited(err)
	case <-time.After(sleep):
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatalf("killing crash child: %v", err)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(stderr.String(), "DATA RACE") {
		t.Fatalf("crash child hit a data race:\n%s", stderr.String())
	}
}

type crashStats struct {
	ops                                 map[string]int // operations the children finished, by name
	nets, eps, joined, sandboxes, ports int
	nets6, ports6                       int // dual-stack networks, IPv6 bindings
}

func (s crashStats) String() string {
	return fmt.Sprintf("%d networks (%d dual-stack), %d endpoints (%d joined), %d sandboxes, %d published IPv4 and %d IPv6 host ports",
		s.nets, s.nets6, s.eps, s.joined, s.sandboxes, s.ports, s.ports6)
}

// makeCrashParent gives host a "physical" interface crashParent: a veth
// whose peer is in a LAN namespace of its own, both up.
func makeCrashParent(t *testing.T, host *testutil.HostNS) {
	t.Helper()
	lan := testutil.NewNamedNS(t, "crashlan")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = crashParent
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "wire", PeerNamespace: netlink.NsFd(lan.Fd())}); err != nil {
		t.Fatalf("making %s: %v", crashParent, err)
	}
	for _, h := range []struct {
		nl   *netlink.Handle
		name string
	}{{host.Netlink, crashParent}, {lan.Netlink, "wire"}} {
		l, err := h.nl.LinkByName(h.name)
		if err == nil {
			err = h.nl.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("bringing %s up: %v", h.name, err)
		}
	}
}
