package memstore_test

import (
	"testing"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/globalstore/storetest"
)

type cluster struct{ s *memstore.Server }

func (c cluster) Client(testing.TB) globalstore.KV { return c.s.Client() }
func (c cluster) Stop(testing.TB)                  { c.s.Stop() }
func (c cluster) Start(testing.TB)                 { c.s.Start() }

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Suite{New: func(testing.TB) storetest.Cluster { return cluster{memstore.New()} }})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, storetest.Suite{New: func(testing.TB) storetest.Cluster { return cluster{memstore.New()} }})
}
