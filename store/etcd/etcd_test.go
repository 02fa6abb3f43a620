package etcd_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/storetest"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	_ "github.com/opencnm/libnetwork/store/etcd"
)

// cluster is one real etcd member on unix sockets in the test's temp dir.
type cluster struct{ m *etcdproc.Member }

func newCluster(t testing.TB) storetest.Cluster {
	return cluster{etcdproc.StartT(t, etcdproc.Options{})}
}

func (c cluster) Client(t testing.TB) globalstore.KV {
	t.Helper()
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{c.m.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Stop kills the member (a crash); Start restarts it on its data.
func (c cluster) Stop(testing.TB) { c.m.Kill() }
func (c cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.m.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Suite{New: newCluster})
}

func BenchmarkStore(b *testing.B) { storetest.Bench(b, storetest.Suite{New: newCluster}) }

// Config.Dialer makes the client's connections (a controller in another
// network namespace dials from there).
func TestDialerIsUsed(t *testing.T) {
	t.Parallel()
	m := etcdproc.StartT(t, etcdproc.Options{})
	var dials atomic.Int32
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{m.Endpoint()},
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	st := globalstore.New(kv, globalstore.Options{Timeout: storetest.Timeout})
	if err := st.Claim(context.Background(), "n1", globalstore.NoLease, globalstore.NetworkName("blue")); err != nil {
		t.Fatal(err)
	}
	if dials.Load() == 0 {
		t.Fatal("the client connected without the configured dialer")
	}
}
