package testrig

import (
	"testing"

	"github.com/opencnm/libnetwork"
)

func FakeNet(t *testing.T, c *libnetwork.Controller, name string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	return Must[*libnetwork.Network](t)(c.NewNetwork("fake", name, "", opts...))
}

// IPAMOpt asks the default IPAM driver for pool, with gw as the gateway
// (empty: the driver picks one).
func IPAMOpt(pool, gw string) libnetwork.NetworkOption {
	return libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: pool, Gateway: gw}}, nil, nil)
}
