package sandboxdns

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/etchosts"
	"github.com/opencnm/libnetwork/types"
)

func TestSetupWritesDefaultFiles(t *testing.T) {
	cfg := rig(t)
	cfg.ExtraHosts = []ExtraHost{{Name: "db", IP: "198.51.100.7"}}
	var d DNS
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	hosts := readFile(t, hostsPath(cfg))
	if !strings.Contains(hosts, "localhost") || !strings.Contains(hosts, "198.51.100.7\tdb") {
		t.Fatalf("hosts lacks localhost or the extra host:\n%s", hosts)
	}
	if strings.Contains(hosts, "host-own-name") {
		t.Fatalf("a sandbox with its own namespace got the host's hosts file:\n%s", hosts)
	}
	rc := readFile(t, resolvPath(cfg))
	if !strings.Contains(rc, "nameserver 192.0.2.53") || !strings.Contains(rc, "search example.org") {
		t.Fatalf("resolv.conf is not built from the origin:\n%s", rc)
	}
	d.Remove()
	if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
		t.Fatalf("Remove left the files directory: %v", err)
	}
}

func TestSetupKeepsUserPaths(t *testing.T) {
	cfg := rig(t)
	user := t.TempDir()
	cfg.HostsPath = filepath.Join(user, "new", "hosts")
	cfg.ResolvPath = filepath.Join(user, "new", "resolv.conf")
	cfg.DNS = []string{"203.0.113.9"}
	var d DNS
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	if rc := readFile(t, cfg.ResolvPath); !strings.Contains(rc, "nameserver 203.0.113.9") || strings.Contains(rc, "192.0.2.53") {
		t.Fatalf("the user's nameserver does not replace the origin's:\n%s", rc)
	}
	d.Remove()
	if _, err := os.Stat(cfg.HostsPath); err != nil {
		t.Fatalf("Remove took the user's hosts file: %v", err)
	}
}

func TestSetupRejectsBadExtraHost(t *testing.T) {
	cfg := rig(t)
	cfg.ExtraHosts = []ExtraHost{{Name: "db", IP: "not-an-ip"}}
	var d DNS
	if err := d.Setup(cfg); !types.IsBadRequest(err) {
		t.Fatalf("Setup with a bad extra host: got %v, want BadRequest", err)
	}
}

func TestHostModeCopiesOrigins(t *testing.T) {
	cfg := rig(t)
	cfg.HostMode = true
	var d DNS
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, hostsPath(cfg)), readFile(t, cfg.OriginHosts); got != want {
		t.Fatalf("host-mode hosts = %q, want the origin's %q", got, want)
	}
	if got, want := readFile(t, resolvPath(cfg)), readFile(t, cfg.OriginResolv); got != want {
		t.Fatalf("host-mode resolv.conf = %q, want the origin's %q", got, want)
	}
	// No resolver runs in the host's namespace, whatever is asked.
	ns := &fakeNS{}
	if err := d.Update(ns, Want{Run: true, Forward: true}); err != nil {
		t.Fatal(err)
	}
	if running(&d) || ns.setCount() != 0 {
		t.Fatalf("host mode started a resolver (running %v, redirects %d)", running(&d), ns.setCount())
	}
}

func TestNamesAddedAndRemovedExactly(t *testing.T) {
	cfg := rig(t)
	var d DNS
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	rec := etchosts.Record{IP: netip.MustParseAddr("10.1.2.3"), Names: []string{"web.example.com", "web"}}
	if err := d.AddNames("ep1", []etchosts.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if h := readFile(t, hostsPath(cfg)); !strings.Contains(h, "10.1.2.3\tweb.example.com web") {
		t.Fatalf("hosts lacks the endpoint's names:\n%s", h)
	}
	d.RemoveNames("ep1")
	if h := readFile(t, hostsPath(cfg)); strings.Contains(h, "10.1.2.3") {
		t.Fatalf("hosts keeps the endpoint's names after RemoveNames:\n%s", h)
	}
	d.RemoveNames("ep1") // again: nothing left to remove
}

func TestUserEditedResolvConfStays(t *testing.T) {
	cfg := rig(t)
	var d DNS
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	const edit = "nameserver 198.51.100.1\n"
	writeFile(t, resolvPath(cfg), edit)
	ns := &fakeNS{}
	if err := d.Update(ns, Want{Run: true, Forward: true, IPv6: true}); err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	if got := readFile(t, resolvPath(cfg)); got != edit {
		t.Fatalf("a user-edited resolv.conf was rewritten:\n%s", got)
	}
}
