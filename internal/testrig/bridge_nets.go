package testrig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

func BridgeNet(t *testing.T, c *libnetwork.Controller, name, brName, pool string) *libnetwork.Network {
	t.Helper()
	opts := []libnetwork.NetworkOption{
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{bridge.BridgeName: brName}}),
	}
	if pool != "" {
		opts = append(opts, libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: pool}}, nil, nil))
	}
	return Must[*libnetwork.Network](t)(c.NewNetwork("bridge", name, "", opts...))
}

// DualStackNet is a bridge network with IPv4 pool v4 and IPv6 pool v6,
// its bridge named brName ("" leaves the name to the driver).
func DualStackNet(t *testing.T, c *libnetwork.Controller, name, brName, v4, v6 string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	opts = append([]libnetwork.NetworkOption{libnetwork.NetworkOptionEnableIPv6(true),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: v4}},
			[]*libnetwork.IpamConf{{PreferredPool: v6}}, nil)}, opts...)
	if brName != "" {
		opts = append(opts, libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{bridge.BridgeName: brName}}))
	}
	return Must[*libnetwork.Network](t)(c.NewNetwork("bridge", name, "", opts...))
}

func ReadSandboxFile(t *testing.T, c *libnetwork.Controller, sb *libnetwork.Sandbox, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Config().ExecRoot, "files", sb.ID(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
