package bridgeflow

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// requireTool finds a program a test drives, skipping where it is not
// installed, except under CI=true, where a missing tool fails the test
// (.ci/run and `make deps` install it).
func requireTool(t *testing.T, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian packages runc, busybox-static), and CI=true forbids skipping: %v", path, err)
	}
	t.Skipf("%s not found (apt-get install runc busybox-static): %v", path, err)
	return ""
}

// runcRig runs real busybox containers with runc, its state under the
// test's temp dir (never /run), each in a cgroup of its own removed with it.
type runcRig struct {
	runc    string
	busybox string
	root    string // runc --root
	dir     string
	cgroups []string // cgroupsPath of every container started
}

func newRuncRig(t *testing.T) *runcRig {
	t.Helper()
	testutil.RequireRoot(t)
	r := &runcRig{runc: requireTool(t, "runc"), busybox: requireTool(t, "/bin/busybox"), dir: t.TempDir()}
	// The rootfs holds busybox alone: a dynamically linked one (Debian's
	// package busybox) would find no libraries there.
	if f, err := elf.Open(r.busybox); err != nil {
		t.Fatalf("reading %s: %v", r.busybox, err)
	} else {
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s is dynamically linked; CI needs busybox-static", r.busybox)
				}
				t.Skipf("%s is dynamically linked (apt-get install busybox-static)", r.busybox)
			}
		}
	}
	r.root = filepath.Join(r.dir, "runc-state")
	return r
}

// container is one running runc container.
type runcContainer struct {
	r       *runcRig
	id      string
	cgroup  string
	removed bool
}

// start runs args (a busybox applet and its arguments) detached in a new
// container whose network namespace is netns ("": a new one runc makes,
// as for a container whose network is set up after it starts, through
// SetKey), with hosts and resolv.conf
// bind-mounted from the sandbox's files; at test end it is killed and
// deleted, and its cgroups must be gone.
func (r *runcRig) start(t *testing.T, name, netns, hosts, resolv string, args ...string) *runcContainer {
	t.Helper()
	id := fmt.Sprintf("opencnm-test-%s-%d", name, time.Now().UnixNano())
	bundle := filepath.Join(r.dir, name)
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "dev", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(r.busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ip", "cat", "sleep", "nslookup", "wget", "httpd", "nc"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte("hello from "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cgroup := "/" + id
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false, "user": map[string]any{"uid": 0, "gid": 0},
			"args": args, "env": []string{"PATH=/bin"}, "cwd": "/",
			"noNewPrivileges": true,
			"capabilities": map[string]any{
				"bounding":  []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
				"effective": []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
				"permitted": []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
			},
		},
		"root":     map[string]any{"path": rootfs},
		"hostname": name,
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "mode=755", "size=1m"}},
			{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "size=1m"}},
			{"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": []string{"rbind", "ro"}},
			{"destination": "/etc/resolv.conf", "type": "bind", "source": resolv, "options": []string{"rbind", "ro"}},
		},
		"linux": map[string]any{
			"cgroupsPath": cgroup,
			"namespaces": []map[string]any{
				{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
				netnsSpec(netns),
			},
			"maskedPaths":   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"},
			"readonlyPaths": []string{"/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	js, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	// The container's stdio: a file, so runc -d does not leave a pipe that
	// keeps Wait waiting for the container to end.
	logf, err := os.Create(filepath.Join(r.dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(r.runc, "--root", r.root, "run", "--detach", "--bundle", bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	r.cgroups = append(r.cgroups, cgroup)
	ctr := &runcContainer{r: r, id: id, cgroup: cgroup}
	t.Cleanup(func() { ctr.remove(t) })
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run %s: %v\n%s", name, err, out)
	}
	// The leftover checks at cleanup look where runc really puts things.
	if len(cgroupDirs(cgroup)) == 0 {
		t.Fatalf("container %s runs in no cgroup directory named %s", name, cgroup)
	}
	if _, err := os.Stat(filepath.Join(r.root, id)); err != nil {
		t.Fatalf("runc state of %s is not under --root: %v", name, err)
	}
	return ctr
}

func netnsSpec(path string) map[string]any {
	if path == "" {
		return map[string]any{"type": "network"}
	}
	return map[string]any{"type": "network", "path": path}
}

// netns returns the path of the container's network namespace through
// its init process, as a runtime passes it to SetKey.
func (c *runcContainer) netns(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(c.r.runc, "--root", c.r.root, "state", c.id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", c.id, err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state %s: %v\n%s", c.id, err, out)
	}
	return fmt.Sprintf("/proc/%d/ns/net", st.Pid)
}

// cgroupDirs lists the directories of cgroup in every hierarchy (v1
// controllers and v2).
func cgroupDirs(cgroup string) []string {
	name := strings.TrimPrefix(cgroup, "/")
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	if more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", name)); len(more) > 0 {
		dirs = append(dirs, more...)
	}
	return dirs
}

// exec runs args in the container and returns its output. A generous
// bound keeps a hung applet from hanging the test (busybox-static's wget
// crashes with its own -T, so the bound is here).
func (c *runcContainer) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.r.runc, append([]string{"--root", c.r.root, "exec", c.id}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *runcContainer) mustExec(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		t.Fatalf("in %s, %v: %v\n%s", c.id, args, err, out)
	}
	return out
}

// remove kills and deletes the container and checks that runc left no
// state, no cgroup and no mount behind.
func (c *runcContainer) remove(t *testing.T) {
	if c.removed {
		return
	}
	c.removed = true
	cgroup := c.cgroup
	_ = exec.Command(c.r.runc, "--root", c.r.root, "kill", c.id, "KILL").Run()
	if out, err := exec.Command(c.r.runc, "--root", c.r.root, "delete", "--force", c.id).CombinedOutput(); err != nil {
		t.Errorf("runc delete %s: %v\n%s", c.id, err, out)
	}
	if _, err := os.Stat(filepath.Join(c.r.root, c.id)); !os.IsNotExist(err) {
		t.Errorf("runc state of %s left: %v", c.id, err)
	}
	for _, d := range cgroupDirs(cgroup) {
		t.Errorf("cgroup %s left by runc", d)
		_ = os.Remove(d)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), c.r.dir) {
		t.Errorf("mounts under %s left:\n%s", c.r.dir, mounts)
	}
}

// A real busybox container run by runc in Sandbox.Key(), with the
// sandbox's hosts and resolv.conf bind-mounted, as a runtime does: from
// inside it has its address and default route once joined, sees the
// resolv.conf and hosts a later Join wrote, finds another container joined
// after it started by name through 127.0.0.11 (busybox nslookup, then
// wget through the C library's resolver), fetches from it, and the host
// reaches that container's published port.
func TestRuncContainer(t *testing.T) {
	t.Parallel()
	r := newRuncRig(t)
	c, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "runcnet", "cnmrunc0", "10.79.2.0/24")
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 192.0.2.53\n")
	files := t.TempDir()
	sandbox := func(name string, opts ...libnetwork.SandboxOption) (*libnetwork.Sandbox, string, string) {
		hosts := filepath.Join(files, name, "hosts")
		resolv := filepath.Join(files, name, "resolv.conf")
		sb := testrig.KernelSandbox(t, c, "ctr-"+name, append([]libnetwork.SandboxOption{
			libnetwork.OptionHostname(name), libnetwork.OptionOriginResolvConfPath(origin),
			libnetwork.OptionHostsPath(hosts), libnetwork.OptionResolvConfPath(resolv),
		}, opts...)...)
		return sb, hosts, resolv
	}

	// Container a starts before its sandbox joins anything, as a runtime
	// starts a container in the namespace and networking follows.
	sbA, hostsA, resolvA := sandbox("a")
	a := r.start(t, "a", sbA.Key(), hostsA, resolvA, "sleep", "600")
	if got := a.mustExec(t, "cat", "/etc/resolv.conf"); !strings.Contains(got, "192.0.2.53") {
		t.Fatalf("resolv.conf inside a at start:\n%s", got)
	}
	epA := testrig.Joined(t, n, sbA, "a")
	if got := a.mustExec(t, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(got, epA.Info().Iface().Address().String()) {
		t.Fatalf("eth0 inside a lacks %s:\n%s", epA.Info().Iface().Address(), got)
	}
	gw := epA.Info().Gateway().String()
	if got := a.mustExec(t, "ip", "-4", "route"); !strings.Contains(got, "default via "+gw) {
		t.Fatalf("routes inside a lack the default via %s:\n%s", gw, got)
	}
	if got := a.mustExec(t, "cat", "/etc/resolv.conf"); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf inside a after the join:\n%s", got)
	}
	if got := a.mustExec(t, "cat", "/etc/hosts"); !strings.Contains(got, testrig.EpIP(epA)+"\ta") {
		t.Fatalf("hosts inside a after the join:\n%s", got)
	}

	// Container b serves HTTP on a port published on the host, and joins
	// after a is running.
	sbB, hostsB, resolvB := sandbox("b",
		libnetwork.OptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 8080}}),
		libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(8080, 18080)}))
	r.start(t, "b", sbB.Key(), hostsB, resolvB, "httpd", "-f", "-p", "8080", "-h", "/www")
	epB := testrig.Joined(t, n, sbB, "b")

	out := a.mustExec(t, "nslookup", "b")
	if !strings.Contains(out, testrig.EpIP(epB)) {
		t.Fatalf("nslookup b inside a (through its resolv.conf) does not give %s:\n%s", testrig.EpIP(epB), out)
	}
	var fetched string
	var ferr error
	deadline := time.Now().Add(10 * time.Second)
	for {
		fetched, ferr = a.exec("wget", "-q", "-O", "-", "http://b:8080/index.html")
		if fetched == "hello from b\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a fetching from b by name: %q, %v", fetched, ferr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The host reaches b's published port, on its loopback and its bridge address.
	for _, addr := range []string{"127.0.0.1:18080", net.JoinHostPort(gw, "18080")} {
		if got, err := httpGet(host.NS, addr, "/index.html"); err != nil || got != "hello from b\n" {
			t.Fatalf("GET %s from the host: %q, %v", addr, got, err)
		}
	}
}

// httpGet fetches http://addr/path from inside ns (HTTP/1.0, one
// connection, dialled on ns's thread) and returns the body.
func httpGet(ns interface{ Do(func() error) error }, addr, path string) (string, error) {
	var conn net.Conn
	if err := ns.Do(func() (err error) { conn, err = net.DialTimeout("tcp", addr, 3*time.Second); return err }); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A runtime that makes a fresh network namespace at every container start
// (runc without a namespace path) hands it over with SetKey, and again
// after the container restarts: the second container, in a namespace the
// first never saw, has the endpoint's address, MAC and default route,
// resolves and reaches another container, and serves its published port
// to the host.
func TestRuncContainerRestart(t *testing.T) {
	t.Parallel()
	r := newRuncRig(t)
	c, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "runcrk", "cnmrunc1", "10.79.6.0/24")
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 192.0.2.53\n")
	srvSb := testrig.KernelSandbox(t, c, "srv")
	srv := testrig.Joined(t, n, srvSb, "srv")
	srvNS, _ := testrig.SandboxNS(t, srvSb)
	testrig.Serve(t, srvNS, "tcp", ":7000", "srv")

	files := t.TempDir()
	hosts, resolv := filepath.Join(files, "hosts"), filepath.Join(files, "resolv.conf")
	sb := testrig.KernelSandbox(t, c, "ctr-web", libnetwork.OptionUseExternalKey(), libnetwork.OptionHostname("web"),
		libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionHostsPath(hosts), libnetwork.OptionResolvConfPath(resolv),
		libnetwork.OptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 80}}),
		libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 18081)}))
	ep := testrig.Joined(t, n, sb, "web")
	addr := ep.Info().Iface().Address().String()
	mac := ep.Info().Iface().MacAddress().String()
	gw := ep.Info().Gateway().String()

	for _, start := range []string{"web1", "web2"} {
		ctr := r.start(t, start, "", hosts, resolv, "httpd", "-f", "-p", "80", "-h", "/www")
		if err := sb.SetKey(ctr.netns(t)); err != nil {
			t.Fatalf("SetKey for %s: %v", start, err)
		}
		if got := ctr.mustExec(t, "ip", "addr", "show", "dev", "eth0"); !strings.Contains(got, addr) || !strings.Contains(got, mac) {
			t.Fatalf("%s: eth0 lacks %s or %s:\n%s", start, addr, mac, got)
		}
		if got := ctr.mustExec(t, "ip", "-4", "route"); !strings.Contains(got, "default via "+gw) {
			t.Fatalf("%s: routes lack the default via %s:\n%s", start, gw, got)
		}
		if got := ctr.mustExec(t, "nslookup", "srv"); !strings.Contains(got, testrig.EpIP(srv)) {
			t.Fatalf("%s: nslookup srv does not give %s:\n%s", start, testrig.EpIP(srv), got)
		}
		if got := ctr.mustExec(t, "nc", "-w", "5", "srv", "7000"); !strings.HasPrefix(got, "srv ") {
			t.Fatalf("%s: nc srv 7000 read %q", start, got)
		}
		if got, err := httpGet(host.NS, "127.0.0.1:18081", "/index.html"); err != nil || got != "hello from "+start+"\n" {
			t.Fatalf("GET of %s's published port from the host: %q, %v", start, got, err)
		}
		ctr.remove(t)
	}
}
