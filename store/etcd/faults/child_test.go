package faults_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
)

// childEnv carries a childSpec (JSON) to the test binary run again as a
// host's controller: then TestFaultChild is that host's daemon.
const childEnv = "CNM_FAULT_CHILD"

// childSpec is what the child needs to run as a host of the lab.
type childSpec struct {
	ID, NS, Addr, Dir, Etcd string
	Net                     string // the overlay network it works on
	Active                  string // file of the sandbox IDs the next start keeps
	Seed                    int64
}

func (r *remoteHost) spec(net, active string, seed int64) childSpec {
	return childSpec{ID: r.id, NS: r.nsPath, Addr: r.addr.String(), Dir: r.dir, Etcd: r.etcd,
		Net: net, Active: active, Seed: seed}
}

// Limits keep the state small, and churn high: addresses and names come
// and go all the time, so a kill lands in every phase of their life.
const (
	childMaxEndpoints = 5
	childMaxJoined    = 3
)

// TestFaultChild is a no-op unless a fault test started this binary as a
// host's controller: then it loops over create/join/leave/delete on the
// overlay network until it is killed. Every error is fatal (exit status
// 2, the error on stderr): each operation is valid in the state it is
// chosen in, whatever a kill of the previous run left.
func TestFaultChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var cs childSpec
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "fault child %s (seed %d): "+format+"\n", append([]any{cs.ID, cs.Seed}, a...)...)
		os.Exit(2)
	}
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		fail("spec: %v", err)
	}
	r := &remoteHost{id: cs.ID, dir: cs.Dir, etcd: cs.Etcd, nsPath: cs.NS}
	r.addr, _ = netip.ParseAddr(cs.Addr)
	active, err := readActive(cs.Active)
	if err != nil {
		fail("reading active sandboxes: %v", err)
	}
	c, err := libnetwork.New(r.options(active)...)
	if err != nil {
		fail("New: %v", err)
	}
	// The network is found through the store: wait for the session.
	var nw *libnetwork.Network
	for deadline := time.Now().Add(20 * time.Second); nw == nil; time.Sleep(20 * time.Millisecond) {
		if nw, err = c.NetworkByName(cs.Net); err != nil && time.Now().After(deadline) {
			fail("network %s: %v", cs.Net, err)
		}
	}
	w := &faultWorker{c: c, nw: nw, dir: cs.Dir, rng: rand.New(rand.NewSource(cs.Seed)), path: cs.Active, fail: fail}
	for _, sb := range c.Sandboxes() {
		w.active = append(w.active, sb.ID())
	}
	w.save()
	fmt.Println("ready")
	// Never outlive a parent that died without killing us.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		fmt.Println("op", w.step())
	}
	fail("not killed within 60 s")
}

type faultWorker struct {
	c      *libnetwork.Controller
	nw     *libnetwork.Network
	dir    string
	rng    *rand.Rand
	active []string
	path   string
	fail   func(format string, a ...any)
}

func (w *faultWorker) save() {
	if err := writeActive(w.path, w.active); err != nil {
		w.fail("writing active sandboxes: %v", err)
	}
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// step does one operation valid in the current state and names it.
func (w *faultWorker) step() string {
	var free, joined []*libnetwork.Endpoint
	for _, ep := range w.nw.Endpoints() {
		if ep.Info().Sandbox() == nil {
			free = append(free, ep)
		} else {
			joined = append(joined, ep)
		}
	}
	switch r := w.rng.Intn(100); {
	case r < 30 && len(free)+len(joined) < childMaxEndpoints:
		if _, err := w.nw.CreateEndpoint(randName("k")); err != nil {
			w.fail("creating endpoint: %v", err)
		}
		return "create"
	case r < 60 && len(free) > 0 && len(joined) < childMaxJoined:
		ep := free[w.rng.Intn(len(free))]
		sb, err := sandbox(w.c, w.dir, randName("s"))
		if err != nil {
			w.fail("sandbox: %v", err)
		}
		// Kept by the next start from now on: a kill before the join
		// leaves a live sandbox without the endpoint, which is valid.
		w.active = append(w.active, sb.ID())
		w.save()
		if err := ep.Join(sb); err != nil {
			w.fail("joining %s: %v", ep.Name(), err)
		}
		return "join"
	case r < 80 && len(joined) > 0:
		ep := joined[w.rng.Intn(len(joined))]
		sb := ep.Info().Sandbox()
		if err := ep.Leave(sb); err != nil {
			w.fail("leaving %s: %v", ep.Name(), err)
		}
		// Not kept from now on: every sandbox the list names exists (a
		// kill before the delete leaves one the next start drops).
		w.active = slices.DeleteFunc(w.active, func(id string) bool { return id == sb.ID() })
		w.save()
		if err := sb.Delete(); err != nil {
			w.fail("deleting sandbox of %s: %v", ep.Name(), err)
		}
		return "leave"
	case len(free) > 0:
		ep := free[w.rng.Intn(len(free))]
		if err := ep.Delete(false); err != nil {
			w.fail("deleting endpoint %s: %v", ep.Name(), err)
		}
		return "delete"
	}
	time.Sleep(time.Millisecond)
	return "idle"
}

// readActive returns the sandboxes the child last asked to keep.
func readActive(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	return ids, json.Unmarshal(b, &ids)
}

// writeActive replaces the list atomically (a kill never leaves half a file).
func writeActive(path string, ids []string) error {
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
