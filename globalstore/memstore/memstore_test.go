package memstore_test

import (
	"testing"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/globalstore/storetest"
)

type cluster struct{ s *memstore.Server }

func (c cluster) Client(*testing.T) globalstore.KV { return c.s.Client() }
func (c cluster) Stop(*testing.T)                  { c.s.Stop() }
func (c cluster) Start(*testing.T)                 { c.s.Start() }

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Suite{New: func(*testing.T) storetest.Cluster { return cluster{memstore.New()} }})
}
