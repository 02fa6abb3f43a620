package faults_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// faultKills is how many times the kill test kills the child (FAULT_KILLS
// overrides the default, kept to tens so `make test` stays fast).
func faultKills() int {
	if n, err := strconv.Atoi(os.Getenv("FAULT_KILLS")); err == nil && n > 0 {
		return n
	}
	return 12
}

// faultBudget bounds the kill loop's wall time whatever FAULT_KILLS says
// (FAULT_BUDGET, a duration, overrides it for soak runs).
func faultBudget() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("FAULT_BUDGET")); err == nil && d > 0 {
		return d
	}
	return 100 * time.Second
}

// TestHostKilled kills host-3's controller (a child process) at random
// points of its create/join/leave/delete loop. After one kill in three it
// waits for the lease to run out and checks that the other hosts' store,
// mirror, DNS and kernels hold nothing of host-3 within TTL + a margin,
// and that host-1 can claim a dead endpoint's address (timed from the
// kill). After every kill a controller started on host-3's state (within
// the lease, or after it ran out) must have exactly its local endpoints
// in the store (no orphan key, none missing), their peers for the joined
// ones, and the other hosts' FDB entries for them.
func TestHostKilled(t *testing.T) {
	l := newLab(t, 2)
	nw1 := overlay(t, l.host(1), "ov", "10.77.0.0/24")
	nid := nw1.ID()
	startWatcher(t, l.host(1), "ov")
	watcher := startWatcher(t, l.host(2), "ov")
	r := l.addRemoteHost(t, "host-3")
	activePath := filepath.Join(r.dir, "active.json")
	t.Cleanup(func() {
		active, _ := readActive(activePath)
		r.teardown(t, l, active)
	})
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("FAULT_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (FAULT_SEED reproduces the parent's choices)", seed)
	rng := rand.New(rand.NewSource(seed))

	var expiries, claims []time.Duration
	ops := map[string]int{}
	began := time.Now()
	kills := 0
	for i := 0; i < faultKills(); i++ {
		if time.Since(began) > faultBudget() {
			t.Logf("time budget spent after %d kills", i)
			break
		}
		killedAt := runChild(t, r, r.spec("ov", activePath, seed+int64(i)), rng, ops)
		kills++
		held := l.keysOf(t, r.id, nid)
		expire := i%3 == 2
		if expire {
			claim, expiry := checkDeadHostGone(t, l, r, nid, held, killedAt, watcher)
			if claim > 0 {
				claims = append(claims, claim)
			}
			expiries = append(expiries, expiry)
		}
		checkRestarted(t, l, r, nid, activePath, held, !expire)
		if t.Failed() {
			t.Fatalf("after kill %d (child seed %d)", i+1, seed+int64(i))
		}
	}
	if ops["join"] == 0 || ops["create"] == 0 {
		t.Errorf("the children made no endpoint or joined none: %v", ops)
	}
	t.Logf("%d kills in %v; the children's operations %v", kills, time.Since(began).Round(time.Millisecond), ops)
	t.Logf("kill to host-3 gone from the store (lease TTL %v): %v", faultTTL, expiries)
	t.Logf("kill to a dead endpoint's address claimed on host-1: %v", claims)
}

// runChild starts host-3's controller in a child process, kills it with
// SIGKILL at a random moment (one kill in five early, during its start and
// restore) and returns when it was killed; ops counts what it reported
// doing.
func runChild(t *testing.T, r *remoteHost, spec childSpec, rng *rand.Rand, ops map[string]int) time.Time {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
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
		t.Fatalf("child exited by itself (%v) before the kill:\nstdout: %s\nstderr: %s",
			err, strings.Join(lines, "\n"), stderr.String())
	}
	var sleep time.Duration
	if rng.Intn(5) == 0 {
		sleep = time.Duration(rng.Intn(300)) * time.Millisecond
	} else {
		select {
		case <-ready:
		case err := <-done:
			exited(err)
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("child not ready after 30 s: %s", stderr.String())
		}
		sleep = time.Duration(rng.Intn(800)) * time.Millisecond
	}
	select {
	case err := <-done:
		exited(err)
	case <-time.After(sleep):
	}
	_ = cmd.Process.Kill()
	killedAt := time.Now()
	<-done
	return killedAt
}

// checkDeadHostGone waits for host-3's lease to run out after a kill and
// checks that nothing of it is left on the other hosts. It returns how
// long after the kill host-1 could claim one of the dead host's addresses
// (0 if it held none) and how long until the store held nothing of it.
func checkDeadHostGone(t *testing.T, l *lab, r *remoteHost, nid string, held hostKeys, killedAt time.Time, w *watcher) (claim, expiry time.Duration) {
	t.Helper()
	bound := faultTTL + 5*time.Second
	if len(held.eps) > 0 {
		a := held.eps[0].Addrs[0].Addr()
		nw1 := netOn(t, l.host(1), "ov")
		var ep *libnetwork.Endpoint
		eventually(t, bound, "host-1 claiming "+a.String()+" of the dead host", func() (err error) {
			ep, err = nw1.CreateEndpoint("claim", libnetwork.CreateOptionIpam(a.AsSlice(), nil, nil, nil))
			return err
		})
		claim = time.Since(killedAt)
		if err := ep.Delete(false); err != nil {
			t.Fatalf("host-1: deleting the claiming endpoint: %v", err)
		}
	}
	eventually(t, bound, "host-3's keys leaving the store", func() error {
		if k := l.keysOf(t, r.id, nid); !k.empty() {
			return fmt.Errorf("%s", k)
		}
		if o := l.orphanClaims(t, nid); len(o) > 0 {
			return fmt.Errorf("claims without an endpoint: %v", o)
		}
		return nil
	})
	expiry = time.Since(killedAt)
	for _, h := range l.Hosts {
		eventually(t, 5*time.Second, h.ID+" forgetting host-3", func() error {
			return noTraceOf(t, h, r, held, w)
		})
	}
	return claim, expiry
}

// noTraceOf is nil when host h has nothing of the dead host r's endpoints
// (held): not in its mirror, its DNS, or its VXLAN FDB and neighbours.
func noTraceOf(t *testing.T, h *testrig.Host, r *remoteHost, held hostKeys, w *watcher) error {
	for _, e := range netOn(t, h, "ov").ClusterEndpoints() {
		if e.Host == r.id {
			return fmt.Errorf("cluster endpoint %s of %s still listed", e.Name, r.id)
		}
	}
	if w.h == h {
		for _, e := range held.eps {
			if ips, _ := w.sb.ResolveName(e.Name, types.IPv4); len(ips) > 0 {
				return fmt.Errorf("the name %s of dead endpoint still resolves to %v", e.Name, ips)
			}
		}
	}
	for _, vx := range h.VXLANs(t) {
		for _, f := range vx.FDB {
			if strings.HasSuffix(f, " dst "+r.addr.String()) {
				return fmt.Errorf("FDB entry %q to the dead host", f)
			}
		}
		for _, e := range held.eps {
			for _, p := range e.Addrs {
				if vx.HasIP(p.Addr().String()) {
					return fmt.Errorf("neighbour entry of dead endpoint %s (%s)", e.Name, p.Addr())
				}
			}
		}
	}
	return nil
}

// checkRestarted starts host-3's controller in the test on the state the
// child left and checks that the store has exactly its local endpoints,
// peers for the joined ones, and that the other hosts forward to them.
// The lease held before the kill (held) is resumed when it was still live
// (resumes), and every sandbox the child asked to keep is there.
func checkRestarted(t *testing.T, l *lab, r *remoteHost, nid, activePath string, held hostKeys, resumes bool) {
	t.Helper()
	active, err := readActive(activePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := libnetwork.New(r.options(active)...)
	if err != nil {
		t.Fatalf("%s: New after a kill: %v", r.id, err)
	}
	defer c.Stop()
	var nw *libnetwork.Network
	eventually(t, 10*time.Second, r.id+" finding ov", func() (err error) {
		nw, err = c.NetworkByName("ov")
		return err
	})
	eventually(t, 2*faultTTL+5*time.Second, r.id+": the store matching its local endpoints", func() error {
		return storeMatches(t, l, r.id, nid, nw)
	})
	if k := l.keysOf(t, r.id, nid); resumes && held.host && k.lease != held.lease {
		t.Errorf("%s restarted within its lease on lease %x, held %x before the kill", r.id, int64(k.lease), int64(held.lease))
	}
	for _, id := range active {
		if _, err := c.SandboxByID(id); err != nil {
			t.Errorf("%s: live sandbox %s not kept by the restart: %v", r.id, id[:12], err)
		}
	}
	for _, h := range l.Hosts {
		eventually(t, 5*time.Second, h.ID+" forwarding to "+r.id+"'s joined endpoints", func() error {
			return forwardsTo(t, h, r, nw)
		})
	}
}

// storeMatches is nil when the store holds exactly the local endpoints of
// host id on nw (same IDs, names and addresses), a peer for each joined
// one and none for the others, its host record, and no claim without
// an endpoint.
func storeMatches(t *testing.T, l *lab, id, nid string, nw *libnetwork.Network) error {
	k := l.keysOf(t, id, nid)
	if !k.host {
		return fmt.Errorf("no host record")
	}
	local := map[string]*libnetwork.Endpoint{}
	var joined []string
	for _, ep := range nw.Endpoints() {
		local[ep.ID()] = ep
		if ep.Info().Sandbox() != nil {
			joined = append(joined, ep.ID())
		}
	}
	for _, e := range k.eps {
		ep, ok := local[e.ID]
		if !ok {
			return fmt.Errorf("orphan endpoint %s (%s) in the store; local: %d endpoints", e.Name, e.ID[:8], len(local))
		}
		if ep.Name() != e.Name || len(e.Addrs) == 0 || e.Addrs[0].Addr() != addrOf(ep) {
			return fmt.Errorf("endpoint %s: store has %s %v, local %s %s", e.ID[:8], e.Name, e.Addrs, ep.Name(), addrOf(ep))
		}
		delete(local, e.ID)
	}
	for _, ep := range local {
		return fmt.Errorf("local endpoint %s (%s) missing from the store", ep.Name(), ep.ID()[:8])
	}
	var peers []string
	for _, p := range k.peers {
		peers = append(peers, p.EndpointID)
	}
	slices.Sort(peers)
	slices.Sort(joined)
	if !slices.Equal(peers, joined) {
		return fmt.Errorf("peers in the store %v, joined endpoints %v", short(peers), short(joined))
	}
	if o := l.orphanClaims(t, nid); len(o) > 0 {
		return fmt.Errorf("claims without an endpoint: %v", o)
	}
	return nil
}

// forwardsTo is nil when host h's kernel sends frames for every joined
// endpoint of r on nw to r's VTEP.
func forwardsTo(t *testing.T, h *testrig.Host, r *remoteHost, nw *libnetwork.Network) error {
	var fdb []string
	for _, vx := range h.VXLANs(t) {
		fdb = append(fdb, vx.FDB...)
	}
	for _, ep := range nw.Endpoints() {
		if ep.Info().Sandbox() == nil {
			continue
		}
		want := strings.ToLower(ep.Info().Iface().MacAddress().String()) + " dst " + r.addr.String()
		if !slices.Contains(fdb, want) {
			return fmt.Errorf("no FDB entry %q (has %v)", want, fdb)
		}
	}
	return nil
}

func short(ids []string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id[:8])
	}
	return out
}

// netOn is the network called name as host h's controller finds it.
func netOn(t testing.TB, h *testrig.Host, name string) *libnetwork.Network {
	t.Helper()
	nw, err := h.Controller().NetworkByName(name)
	if err != nil {
		t.Fatalf("%s: network %s: %v", h.ID, name, err)
	}
	return nw
}

// watcher is a container on a host of the lab, joined to a network: its
// sandbox's resolver is the DNS view of that host, and its VXLAN device
// exists (the kernel checks read its entries).
type watcher struct {
	h  *testrig.Host
	ep *libnetwork.Endpoint
	sb *libnetwork.Sandbox
}

func startWatcher(t *testing.T, h *testrig.Host, net string) *watcher {
	t.Helper()
	ep, err := netOn(t, h, net).CreateEndpoint("watch-" + h.ID)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox(h.Controller(), t.TempDir(), "watch-"+h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	return &watcher{h: h, ep: ep, sb: sb}
}

var _ = globalstore.DefaultPrefix
