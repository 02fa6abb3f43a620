package options

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// The walk's checks of the timeouts: each sets a timeout far below its
// default and sees the wait it bounds end after about that long: more
// than half of it (the wait is not skipped) and less than ten times it
// (the default, beyond ten times, is not used instead). The margins are
// wide so that a loaded machine does not fail them.

// aboutAsLong reports whether took is about d, in that sense.
func aboutAsLong(took, d time.Duration) bool { return took > d/2 && took < 10*d }

// hostNSOpts is a throwaway host namespace for a controller the test
// builds itself when root; unprivileged, the test's own namespace.
func hostNSOpts(t *testing.T) []config.Option {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	return []config.Option{config.OptionHostNetNS(testutil.NewHostNS(t).Path())}
}

// checkStoreTimeout: New on a store another controller holds fails with
// a Timeout after about StoreTimeout (default 2 s).
func checkStoreTimeout(t *testing.T, _ *walkRig) {
	const d = 150 * time.Millisecond
	dir := t.TempDir()
	testrig.NewController(t, config.OptionDataDir(dir))
	start := time.Now()
	c, err := libnetwork.New(append(hostNSOpts(t), config.OptionDataDir(dir), config.OptionExecRoot(t.TempDir()),
		config.OptionStoreTimeout(d))...)
	took := time.Since(start)
	if err == nil {
		c.Stop()
	}
	if !types.IsTimeout(err) || !aboutAsLong(took, d) {
		t.Fatalf("New on a held store with StoreTimeout %v: want Timeout after about that, got %v after %v", d, err, took)
	}
}

// silentPluginDir is a plugin directory holding a socket of the plugin
// name that is listened on but never served: connections queue.
func silentPluginDir(t *testing.T, name string) string {
	t.Helper()
	dir := plugintest.Dir(t)
	l, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir
}

// checkPluginTimeout: a network of a silent plugin fails with a Timeout
// after about PluginTimeout (default 15 s).
func checkPluginTimeout(t *testing.T, _ *walkRig) {
	const d = 300 * time.Millisecond
	c := testrig.NewController(t, config.OptionPluginDirs(silentPluginDir(t, "walksilent")), config.OptionPluginTimeout(d))
	start := time.Now()
	_, err := c.NewNetwork("walksilent", "silent", "")
	if took := time.Since(start); !types.IsTimeout(err) || !aboutAsLong(took, d) {
		t.Fatalf("silent plugin with PluginTimeout %v: want Timeout after about that, got %v after %v", d, err, took)
	}
}

// checkPluginDirs: a plugin socket in the configured directory is found
// (waited for, as it is silent), and unknown to a controller looking in
// another directory.
func checkPluginDirs(t *testing.T, _ *walkRig) {
	dir := silentPluginDir(t, "walkfound")
	for _, tc := range []struct {
		dir  string
		want func(error) bool
	}{{dir, types.IsTimeout}, {t.TempDir(), types.IsNotFound}} {
		c := testrig.NewController(t, config.OptionPluginDirs(tc.dir), config.OptionPluginTimeout(100*time.Millisecond))
		if _, err := c.NewNetwork("walkfound", "found", ""); !tc.want(err) {
			t.Fatalf("plugin socket in %s, PluginDirs %s: got %v", dir, tc.dir, err)
		}
	}
}

// checkDNSTimeout: the embedded resolver forwarding to an upstream that
// never answers gives up (answers SERVFAIL) after about DNSTimeout
// (default 4 s).
func checkDNSTimeout(t *testing.T, _ *walkRig) {
	const d = 300 * time.Millisecond
	c, host := testrig.NewPrivController(t, config.OptionDNSTimeout(d))
	var pc net.PacketConn
	if err := host.NS.Do(func() (err error) { pc, err = net.ListenPacket("udp4", "127.0.0.53:53"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 127.0.0.53\n")
	n := testrig.BridgeNet(t, c, "walkdns", "cnmwdns0", "10.84.0.0/24")
	sb := testrig.KernelSandbox(t, c, "walkdns", libnetwork.OptionOriginResolvConfPath(origin))
	testrig.Joined(t, n, sb, "walkdns")
	ns, _ := testrig.SandboxNS(t, sb)
	start := time.Now()
	resp, err := queryFor(ns, "forwarded.example.", 30*d)
	took := time.Since(start)
	if err != nil || resp.Rcode != dns.RcodeServerFailure || !aboutAsLong(took, d) {
		t.Fatalf("silent upstream with DNSTimeout %v: want SERVFAIL after about that, got %v (err %v) after %v", d, resp, err, took)
	}
}

// queryFor asks the sandbox's embedded resolver for name's A record,
// waiting up to wait for the answer.
func queryFor(ns *netnsutil.NS, name string, wait time.Duration) (*dns.Msg, error) {
	var resp *dns.Msg
	err := ns.Do(func() (err error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		resp, _, err = (&dns.Client{Net: "udp", Timeout: wait}).Exchange(m, "127.0.0.11:53")
		return err
	})
	if resp != nil {
		resp.Answer = nil // keep failure messages short
	}
	return resp, err
}
