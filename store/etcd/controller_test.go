package etcd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// patience bounds waits for what must happen; far beyond what they take.
const patience = 30 * time.Second

// waitSelf waits until c's own host is registered in the store.
func waitSelf(t *testing.T, c *libnetwork.Controller) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		hs, err := c.ClusterHosts()
		for _, h := range hs {
			if h.Self {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller's host is not registered after %v: hosts %+v, %v", patience, hs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A controller pointed at an etcd that is down starts at once (New makes
// no store call) and its bridge networks work in its host namespace; when
// etcd is started again, the session comes up in the background.
func TestControllerWithEtcdDown(t *testing.T) {
	m := etcdproc.StartT(t, etcdproc.Options{})
	m.Kill()
	const timeout = 60 * time.Second
	start := time.Now()
	c, _ := testrig.NewPrivController(t, config.OptionKVProvider("etcd"), config.OptionKVProviderURL(m.Endpoint()),
		config.OptionKVTimeout(timeout), config.OptionHostLeaseTTL(3*time.Second))
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("New with etcd down took %v: it waited for the store", took)
	}
	n, err := c.NewNetwork("bridge", "br-down", "")
	if err != nil {
		t.Fatalf("bridge network with etcd down: %v", err)
	}
	ep, err := n.CreateEndpoint("e1")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.NewSandbox("ctr1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatalf("join with etcd down: %v", err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitSelf(t, c)
}

// With HostNetNS set, the controller dials etcd's TCP endpoint from inside
// its host namespace: etcd listens on that namespace's loopback, which the
// test process's own namespace cannot reach.
func TestControllerDialsFromHostNamespace(t *testing.T) {
	host := testutil.NewHostNS(t)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := host.Do(func() (err error) {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	const url = "http://127.0.0.1:23791"
	etcdproc.StartT(t, etcdproc.Options{NetNS: host.Path(), Dial: dial, ClientURL: url, PeerURL: "http://127.0.0.1:23801"})
	c := testrig.NewPrivControllerIn(t, host, config.OptionKVProvider("etcd"), config.OptionKVProviderURL(url),
		config.OptionHostLeaseTTL(3*time.Second))
	waitSelf(t, c)
}
