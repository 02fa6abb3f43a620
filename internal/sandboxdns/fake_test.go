package sandboxdns

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
)

// fakeNS is a Namespace whose sockets are bound in the test's own
// namespace (127.0.0.11 is on every loopback) and whose redirect is a
// field: the test sees each change and can damage it.
type fakeNS struct {
	mu       sync.Mutex
	redirect Ports // zero: none
	sets     []Ports
	removes  int
	damaged  bool  // RedirectIntact reports false
	setErr   error // SetRedirect fails with it
}

func (f *fakeNS) Do(fn func() error) error { return fn() }

func (f *fakeNS) SetRedirect(p Ports) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.redirect, f.damaged = p, false
	f.sets = append(f.sets, p)
	return nil
}

func (f *fakeNS) RemoveRedirect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redirect = Ports{}
	f.removes++
	return nil
}

func (f *fakeNS) Redirect() (Ports, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redirect, f.redirect != Ports{}, nil
}

func (f *fakeNS) RedirectIntact(p Ports) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.damaged && f.redirect == p, nil
}

func (f *fakeNS) setCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sets)
}

var errFake = errors.New("fake failure")

// dialed is the last upstream a rig's resolver tried to reach.
var dialed atomic.Value

// noNames is a Backend that knows no container names.
type noNames struct{}

func (noNames) ResolveName(string, int) ([]net.IP, bool) { return nil, false }
func (noNames) ResolveIP(string) string                  { return "" }

// rig is a sandbox's DNS configuration over temp files: an origin
// resolv.conf naming one external server, and default paths in Dir.
// Its Dial reaches nothing: it records the upstream asked for and fails,
// so no query leaves the machine.
func rig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	origin := filepath.Join(dir, "origin-resolv.conf")
	writeFile(t, origin, "nameserver 192.0.2.53\nsearch example.org\n")
	hosts := filepath.Join(dir, "origin-hosts")
	writeFile(t, hosts, "127.0.0.1 host-own-name\n")
	return Config{
		ID: "0123456789abcdef0123", Dir: filepath.Join(dir, "files", "sb"),
		OriginResolv: origin, OriginHosts: hosts, Backend: noNames{},
		Dial: func(_ context.Context, _ string, u resolver.Upstream) (net.Conn, error) {
			dialed.Store(u.AddrPort.String())
			return nil, errFake
		},
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func resolvPath(cfg Config) string { return filepath.Join(cfg.Dir, "resolv.conf") }
func hostsPath(cfg Config) string  { return filepath.Join(cfg.Dir, "hosts") }

// namesEmbedded reports whether the sandbox's resolv.conf sends queries
// to the embedded resolver.
func namesEmbedded(t *testing.T, cfg Config) bool {
	t.Helper()
	return strings.Contains(readFile(t, resolvPath(cfg)), "nameserver "+resolvconf.EmbeddedNameserver)
}

// query asks 127.0.0.11:port over UDP and reports whether anything
// answered: the resolver serves on the sockets the redirect leads to.
func query(t *testing.T, port uint16) bool {
	t.Helper()
	c, err := net.Dial("udp4", net.JoinHostPort(resolvconf.EmbeddedNameserver, itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A minimal query for "a." type A, class IN.
	msg := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(deadline())
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return err == nil && n >= 12 && buf[0] == 0x12 && buf[1] == 0x34
}

// running reports whether d's resolver runs.
func running(d *DNS) bool { return d.res != nil }
