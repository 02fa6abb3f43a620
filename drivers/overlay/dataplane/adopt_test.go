package dataplane

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// Adopt takes a data plane over as it is, only with the VNI it carries;
// its endpoints come back with AdoptEndpoint, and Release leaves it all
// in the kernel.
func TestAdopt(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	must(t, tcp(c1, c2, false))
	h1 := l.hosts[0]
	cfg := h1.net.cfg

	var conflict *ConflictError
	wrong := cfg
	wrong.VNI++
	if _, err := Adopt(wrong); !errors.As(err, &conflict) {
		t.Fatalf("Adopt with another VNI: want a ConflictError, got %v", err)
	}
	missing := cfg
	missing.NSPath = filepath.Join(t.TempDir(), "none")
	if _, err := Adopt(missing); !errors.As(err, &conflict) {
		t.Fatalf("Adopt of nothing: want a ConflictError, got %v", err)
	}

	adopted, err := Adopt(Config{VNI: cfg.VNI, HostNS: cfg.HostNS, NSPath: cfg.NSPath})
	must(t, err)
	t.Cleanup(func() {
		if err := adopted.Delete(); err != nil {
			t.Errorf("deleting the adopted data plane: %v", err)
		}
	})
	if adopted.LocalVTEP() != h1.vtep || adopted.MTU() != h1.net.MTU() {
		t.Fatalf("adopted VTEP %s MTU %d, want %s %d", adopted.LocalVTEP(), adopted.MTU(), h1.vtep, h1.net.MTU())
	}
	if _, err := adopted.AdoptEndpoint(EndpointConfig{ID: "never", IfName: "eth0", MAC: c1.peer.MAC, IPv4: prefix("10.0.0.9/24")}); !errors.As(err, &conflict) {
		t.Fatalf("AdoptEndpoint without a veth: want a ConflictError, got %v", err)
	}
	p, err := adopted.AdoptEndpoint(EndpointConfig{ID: c1.peer.ID, IfName: "eth0", MAC: c1.peer.MAC,
		IPv4: prefix("10.0.0.1/24"), IPv6: prefix("fd00:db8::1/64")})
	must(t, err)
	if !p.equal(c1.peer) {
		t.Fatalf("adopted peer %+v, want %+v", p, c1.peer)
	}
	h1.net.Release() // the old process goes; the adopter deletes it all
	must(t, udp(c1, c2, false, 64, 10*time.Second, false))
	// The whole set: what the kernel holds is claimed now, and stays.
	if _, err := adopted.Reconcile([]Peer{c2.peer}); err != nil {
		t.Fatal(err)
	}
	must(t, tcp(c1, c2, true))
	must(t, adopted.Detach(c1.peer.ID))
	if !blocked(c2, c1, false) {
		t.Fatal("c1 still reachable after its adopted endpoint was detached")
	}
}

// A namespace whose link vxlan0 is not a VXLAN device is a ConflictError,
// not a crash.
func TestAdoptNotVXLAN(t *testing.T) {
	ns := testutil.NewNamedNS(t, "plane")
	for _, name := range []string{BridgeName, vxlanName} {
		if err := ns.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	var conflict *ConflictError
	if _, err := Adopt(Config{VNI: 42, NSPath: ns.Path()}); !errors.As(err, &conflict) {
		t.Fatalf("Adopt with a bridge named %s: want a ConflictError, got %v", vxlanName, err)
	}
}
