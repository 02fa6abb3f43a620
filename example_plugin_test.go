package libnetwork_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
)

// A network driver served as a Docker v1 plugin: its socket p2p.sock in a
// plugin directory makes "p2p" a network type. The plugin here is served
// in-process with go-plugins-helpers; a separate plugin process listening
// on the same socket is used the same way. It needs root.
func ExampleController_NewNetwork_plugin() {
	if err := runOnPlugin(); err != nil {
		log.Fatal(err)
	}
}

func runOnPlugin() (err error) {
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "p2p.sock"))
	if err != nil {
		return err
	}
	go func() { _ = network.NewHandler(p2p{}).Serve(l) }()
	defer l.Close() // after the controller stops: it may still call the plugin

	c, err := libnetwork.New(config.OptionPluginDirs(dir))
	if err != nil {
		return err
	}
	defer c.Stop()
	// The controller keeps the addressing (pools, gateways, endpoint
	// addresses) and sends it to the plugin.
	nw, err := c.NewNetwork("p2p", "links", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "172.29.0.0/24"}}, nil, nil))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nw.Delete()) }()

	ep, err := nw.CreateEndpoint("db")
	if err != nil {
		return err
	}
	sb, err := c.NewSandbox("db")
	if err != nil {
		return errors.Join(err, ep.Delete(false))
	}
	defer func() { err = errors.Join(err, sb.Delete()) }()
	if err := ep.Join(sb); err != nil {
		return errors.Join(err, ep.Delete(false))
	}
	info, err := ep.DriverInfo()
	if err != nil {
		return err
	}
	fmt.Println("db on", nw.Type(), "with", ep.Info().Iface().Address(), "host end", info["host_end"])
	return nil
}

// p2p gives each endpoint a veth pair: at Join it makes the pair in the
// host namespace and names the end the controller moves into the sandbox;
// the other end stays in the host. The controller gives the link back at
// Leave, and DeleteEndpoint removes the pair.
type p2p struct{}

func hostEnd(eid string) string { return "p2p" + eid[:8] }

func (p2p) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope}, nil
}

func (p2p) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd(r.EndpointID)}, PeerName: "p2c" + r.EndpointID[:8]}
	// A Join repeated after a lost reply finds the pair already there.
	if err := netlink.LinkAdd(veth); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return nil, err
	}
	return &network.JoinResponse{InterfaceName: network.InterfaceName{SrcName: veth.PeerName, DstPrefix: "eth"}}, nil
}

func (p2p) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	link, err := netlink.LinkByName(hostEnd(r.EndpointID))
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil // never joined, or deleted before
	}
	if err != nil {
		return err
	}
	return netlink.LinkDel(link)
}

func (p2p) EndpointInfo(r *network.InfoRequest) (*network.InfoResponse, error) {
	return &network.InfoResponse{Value: map[string]string{"host_end": hostEnd(r.EndpointID)}}, nil
}

// The rest keeps no state of its own.
func (p2p) CreateNetwork(*network.CreateNetworkRequest) error { return nil }
func (p2p) DeleteNetwork(*network.DeleteNetworkRequest) error { return nil }
func (p2p) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return &network.CreateEndpointResponse{}, nil
}
func (p2p) Leave(*network.LeaveRequest) error { return nil }
func (p2p) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, nil
}
func (p2p) FreeNetwork(*network.FreeNetworkRequest) error                                 { return nil }
func (p2p) DiscoverNew(*network.DiscoveryNotification) error                              { return nil }
func (p2p) DiscoverDelete(*network.DiscoveryNotification) error                           { return nil }
func (p2p) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error { return nil }
func (p2p) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error   { return nil }
