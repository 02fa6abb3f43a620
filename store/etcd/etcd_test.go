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

func newCluster(t *testing.T) storetest.Cluster {
	return cluster{etcdproc.StartT(t, etcdproc.Options{})}
}

func (c cluster) Client(t *testing.T) globalstore.KV {
	t.Helper()
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{c.m.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Stop kills the member (a crash); Start restarts it on its data.
func (c cluster) Stop(*testing.T) { c.m.Kill() }
func (c cluster) Start(t *testing.T) {
	t.Helper()
	if err := c.m.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Suite{New: newCluster})
}
