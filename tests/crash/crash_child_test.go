package crash

import (
	"encoding/hex"
	"fmt"
	"math/rand"
	mrand "math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// TestCrashChild is a no-op unless TestCrashRecovery started this binary
// as its worker: then it runs random operations on a controller until it
// is killed. Every error is fatal (exit status 2 with the error on
// stderr): the operations are chosen so that none should fail, restored
// objects included.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		return
	}
	dirs := crashDirs{host: os.Getenv(crashHostEnv), exec: os.Getenv(crashExecEnv),
		data: os.Getenv(crashDataEnv), active: os.Getenv(crashActiveEnv)}
	seed, _ := strconv.ParseInt(os.Getenv(crashSeedEnv), 10, 64)
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "crash child (seed %d): "+format+"\n", append([]any{seed}, a...)...)
		os.Exit(2)
	}
	active, err := readActive(dirs.active)
	if err != nil {
		fail("reading active sandboxes: %v", err)
	}
	c, err := libnetwork.New(dirs.options(active)...)
	if err != nil {
		fail("New: %v", err)
	}
	if err := c.RestoreError(); err != nil {
		// The parent restored the same state first and checked it; a
		// second restore of it must be clean too.
		fail("restore: %v", err)
	}
	w := &crashWorker{c: c, rng: mrand.New(mrand.NewSource(seed)), active: crashActive{}, path: dirs.active, fail: fail}
	for _, sb := range c.Sandboxes() {
		w.active[sb.ID()] = active[sb.ID()]
	}
	w.saveActive()
	fmt.Println("ready")
	// Never outlive a parent that died without killing us.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		op := w.step()
		fmt.Println("op", op)
	}
	fail("not killed within 60 s")
}

type crashWorker struct {
	c      *libnetwork.Controller
	rng    *mrand.Rand
	active crashActive // sandboxes the next start must keep, with their ports
	path   string
	fail   func(format string, a ...any)
}

func (w *crashWorker) saveActive() {
	if err := writeActive(w.path, w.active); err != nil {
		w.fail("writing active sandboxes: %v", err)
	}
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Limits keep the state small enough that a consistency check is quick,
// and the pools small enough that addresses are reused often.
const (
	crashMaxNets      = 3
	crashMaxEndpoints = 14
	crashMaxSandboxes = 5
)

// step does one random operation that is valid in the current state and
// returns its name.
func (w *crashWorker) step() string {
	c := w.c
	nets := c.Networks()
	// usable: the networks endpoints are made on, the bridges and the
	// internal macvlan network (links in the sandboxes, a stand-in parent
	// in the host).
	var bridges, usable []*libnetwork.Network
	isMacvlan := map[string]bool{}
	for _, n := range nets {
		switch n.Type() {
		case "bridge":
			bridges = append(bridges, n)
			usable = append(usable, n)
		case "macvlan":
			usable = append(usable, n)
			isMacvlan[n.Name()] = true
		}
	}
	var free, joined []*libnetwork.Endpoint
	for _, n := range usable {
		for _, ep := range n.Endpoints() {
			if ep.Info().Sandbox() == nil {
				free = append(free, ep)
			} else {
				joined = append(joined, ep)
			}
		}
	}
	sbs := c.Sandboxes()
	pick := func(n int) int { return w.rng.Intn(n) }

	// Both macvlan networks always exist (made again at the next step
	// when deleted), so every run joins macvlan endpoints.
	if !isMacvlan["mv"] && !isMacvlan["memmv"] {
		return w.createMacvlan()
	}
	if !isMacvlan[crashParentNet] {
		return w.createParentedMacvlan()
	}
	switch r := pick(100); {
	case r < 8 && len(bridges) < crashMaxNets:
		return w.createNetwork(bridges)
	case r < 12:
		for _, n := range usable {
			if len(n.Endpoints()) == 0 {
				if err := n.Delete(); err != nil {
					w.fail("deleting network %s: %v", n.Name(), err)
				}
				return "delete-network"
			}
		}
	case r < 32 && len(usable) > 0 && len(free)+len(joined) < crashMaxEndpoints:
		n := usable[pick(len(usable))]
		name, opts := randName("e"), []libnetwork.EndpointOption(nil)
		if pick(3) == 0 && !isMacvlan[n.Name()] { // macvlan publishes nothing
			// Its own published port, on a host port the library
			// chooses (published while it is its sandbox's gateway).
			name = randName(crashOwnPortPrefix)
			opts = append(opts, libnetwork.CreateOptionPortMapping(crashOwnPorts))
		}
		if _, err := n.CreateEndpoint(name, opts...); err != nil {
			w.fail("creating endpoint on %s: %v", n.Name(), err)
		}
		return "create-endpoint"
	case r < 40 && len(free) > 0:
		ep := free[pick(len(free))]
		if err := ep.Delete(false); err != nil {
			w.fail("deleting endpoint %s: %v", ep.Name(), err)
		}
		return "delete-endpoint"
	case r < 55 && len(sbs) < crashMaxSandboxes:
		ports := w.sandboxPorts()
		opts := []libnetwork.SandboxOption{libnetwork.OptionHostname("crash")}
		if len(ports) > 0 {
			opts = append(opts, libnetwork.OptionPortMapping(ports))
		}
		sb, err := c.NewSandbox(randName("c"), opts...)
		if err != nil {
			w.fail("creating sandbox: %v", err)
		}
		w.active[sb.ID()] = ports
		w.saveActive()
		return "new-sandbox"
	case r < 80 && len(free) > 0 && len(sbs) > 0:
		ep := free[pick(len(free))]
		for _, i := range w.rng.Perm(len(sbs)) {
			sb := sbs[i]
			if onNetwork(sb, ep.Network()) || isMacvlan[ep.Network()] && len(w.active[sb.ID()]) > 0 {
				continue // a sandbox publishing ports cannot join macvlan
			}
			err := ep.Join(sb)
			if types.IsForbidden(err) && strings.Contains(err.Error(), "already allocated") {
				// A fixed host port another container holds: refused,
				// and the join leaves nothing.
				if ep.Info().Sandbox() != nil || onNetwork(sb, ep.Network()) {
					w.fail("join of %s refused (%v) but it is joined", ep.Name(), err)
				}
				return "join-port-taken"
			}
			if err != nil {
				w.fail("joining %s to sandbox %s: %v", ep.Name(), sb.ID()[:12], err)
			}
			if ep.Network() == crashParentNet {
				return "join-macvlan-parent"
			}
			if isMacvlan[ep.Network()] {
				return "join-macvlan"
			}
			return "join"
		}
	case r < 92 && len(joined) > 0:
		ep := joined[pick(len(joined))]
		sb := ep.Info().Sandbox()
		if err := ep.Leave(sb); err != nil {
			w.fail("leaving %s from sandbox %s: %v", ep.Name(), sb.ID()[:12], err)
		}
		return "leave"
	case r >= 92 && len(sbs) > 0:
		sb := sbs[pick(len(sbs))]
		// The container is stopping: it is not to be kept from here on.
		delete(w.active, sb.ID())
		w.saveActive()
		if err := sb.Delete(); err != nil {
			w.fail("deleting sandbox %s: %v", sb.ID()[:12], err)
		}
		return "delete-sandbox"
	}
	return "none"
}

// createNetwork makes a bridge network on a /26 no other network uses
// (small, so addresses are reused often); one in three is dual-stack, with
// an IPv6 ULA /64 of its own (fd66:<k>::/64, distinct as the /26 is), so
// its endpoints get IPv6 addresses and publish their ports in both
// families; one in three is IPv4 nat-unprotected with a trusted host
// interface; one in four is kept in memory only
// (NetworkOptionPersist(false)), whose leftovers the next start must
// collect.
func (w *crashWorker) createNetwork(existing []*libnetwork.Network) string {
	used := map[string]bool{}
	for _, n := range existing {
		v4, _ := n.IpamInfo()
		for _, i := range v4 {
			used[i.Pool.String()] = true
		}
	}
	for _, k := range w.rng.Perm(8) {
		pool := fmt.Sprintf("10.66.%d.0/26", k)
		if used[pool] {
			continue
		}
		var v6 []*libnetwork.IpamConf
		name := fmt.Sprintf("n%d", k)
		if w.rng.Intn(3) == 0 {
			v6 = []*libnetwork.IpamConf{{PreferredPool: fmt.Sprintf("fd66:%d::/64", k)}}
			name = fmt.Sprintf("ds%d", k)
		}
		opts := []libnetwork.NetworkOption{libnetwork.NetworkOptionIpam("default", "",
			[]*libnetwork.IpamConf{{PreferredPool: pool}}, v6, nil)}
		if v6 != nil {
			opts = append(opts, libnetwork.NetworkOptionEnableIPv6(true))
		}
		if w.rng.Intn(3) == 0 {
			// The rule checker renders these too: no protection for
			// IPv4, a trusted interface (which need not exist).
			opts = append(opts, libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{
				bridge.GatewayModeIPv4: "nat-unprotected", bridge.TrustedHostInterfaces: "eth9"}}))
		}
		if w.rng.Intn(4) == 0 {
			opts = append(opts, libnetwork.NetworkOptionPersist(false))
			name = "mem" + name
		}
		if _, err := w.c.NewNetwork("bridge", name, "", opts...); err != nil {
			w.fail("creating network on %s: %v", pool, err)
		}
		return "create-network"
	}
	return "none"
}

// createMacvlan makes the internal macvlan network (no parent: the driver
// makes a tagged stand-in veth pair), persisted or, one time in four, kept
// in memory only.
func (w *crashWorker) createMacvlan() string {
	name := "mv"
	opts := []libnetwork.NetworkOption{libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: "10.67.0.0/26"}}, nil, nil)}
	if w.rng.Intn(4) == 0 {
		opts = append(opts, libnetwork.NetworkOptionPersist(false))
		name = "memmv"
	}
	if _, err := w.c.NewNetwork("macvlan", name, "", opts...); err != nil {
		w.fail("creating macvlan network: %v", err)
	}
	return "create-macvlan"
}

// crashParent is the host's "physical" interface TestCrashRecovery makes
// (a veth to a LAN namespace), the parent of macvlan network
// crashParentNet.
const (
	crashParent    = "lan0"
	crashParentNet = "mvp"
)

// createParentedMacvlan makes macvlan network crashParentNet on
// crashParent.
func (w *crashWorker) createParentedMacvlan() string {
	opts := []libnetwork.NetworkOption{
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{macvlan.ParentOpt: crashParent}}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.67.0.64/26"}}, nil, nil),
	}
	if _, err := w.c.NewNetwork("macvlan", crashParentNet, "", opts...); err != nil {
		w.fail("creating macvlan network on %s: %v", crashParent, err)
	}
	return "create-macvlan-parent"
}

// Published ports. Sandboxes publish fixed host ports from a range of
// three, so two containers asking for the same one happens often (the
// second join is refused), and ports the library chooses; endpoints named
// with crashOwnPortPrefix publish crashOwnPorts of their own.
const (
	crashPortBase      = 30000
	crashPortRange     = 3
	crashOwnPortPrefix = "p"
)

var crashOwnPorts = []types.PortBinding{{Proto: types.TCP, Port: 8080}}

// sandboxPorts picks what a new sandbox publishes: nothing, a fixed TCP
// port, a chosen TCP port, or a fixed UDP port and a chosen TCP port.
func (w *crashWorker) sandboxPorts() []types.PortBinding {
	fixed := func(proto types.Protocol) types.PortBinding {
		return types.PortBinding{Proto: proto, Port: 53, HostPort: uint16(crashPortBase + w.rng.Intn(crashPortRange))}
	}
	chosen := types.PortBinding{Proto: types.TCP, Port: 80}
	switch w.rng.Intn(4) {
	case 1:
		return []types.PortBinding{fixed(types.TCP)}
	case 2:
		return []types.PortBinding{chosen}
	case 3:
		return []types.PortBinding{fixed(types.UDP), chosen}
	}
	return nil
}

func onNetwork(sb *libnetwork.Sandbox, network string) bool {
	for _, ep := range sb.Endpoints() {
		if ep.Network() == network {
			return true
		}
	}
	return false
}
