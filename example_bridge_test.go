package libnetwork_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// A user-defined bridge network and a container on it whose TCP port 80 is
// published on a host port the kernel picks (as `docker run -p 80`). It
// needs root.
func ExampleController_NewNetwork() {
	if err := runWeb(); err != nil {
		log.Fatal(err)
	}
}

func runWeb() (err error) {
	c, err := libnetwork.New()
	if err != nil {
		return err
	}
	defer c.Stop()

	nw, err := c.NewNetwork("bridge", "web", "",
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: "br-web"}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "172.30.0.0/24"}}, nil, nil))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nw.Delete()) }()

	sb, err := startContainer(c, nw, "web1")
	if err != nil {
		return err
	}
	// At the container's end: Delete leaves and deletes its endpoints too.
	defer func() { err = errors.Join(err, sb.Delete()) }()

	ep := sb.Endpoints()[0]
	info, err := ep.DriverInfo()
	if err != nil {
		return err
	}
	// The bindings as published, with the host ports actually taken.
	ports, _ := info[netlabel.PortMap].([]types.PortBinding)
	for _, pb := range ports {
		fmt.Printf("web1 %s/%d is published on host port %d\n", pb.Proto, pb.Port, pb.HostPort)
	}
	fmt.Println("web1 has address", ep.Info().Iface().Address(), "and key", sb.Key())
	return nil
}

// startContainer gives container id an endpoint on nw publishing its TCP
// port 80, and a sandbox (its network namespace, hosts and resolv.conf)
// joined to it. On failure it leaves nothing behind.
func startContainer(c *libnetwork.Controller, nw *libnetwork.Network, id string) (*libnetwork.Sandbox, error) {
	ep, err := nw.CreateEndpoint(id,
		libnetwork.CreateOptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 80}}),
		// HostPort 0: any free port; HostPort with HostPortEnd: one of a range.
		libnetwork.CreateOptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
	if err != nil {
		return nil, err
	}
	sb, err := c.NewSandbox(id, libnetwork.OptionHostname(id))
	if err != nil {
		return nil, errors.Join(err, ep.Delete(false))
	}
	if err := ep.Join(sb); err != nil {
		// A host port someone else holds is a types.ForbiddenError.
		return nil, errors.Join(err, sb.Delete(), ep.Delete(false))
	}
	return sb, nil
}
