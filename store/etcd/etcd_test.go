package etcd_test

import (
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
