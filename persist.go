package libnetwork

import (
	"encoding/json"
	"net"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// Record kinds in the store.
const (
	kindNetwork  = "network"
	kindEndpoint = "endpoint"
	kindSandbox  = "sandbox"
)

// The records are plain snapshots of the in-memory model, written through
// on every change; the model itself never reads them back while running.

type ipamInfoRecord struct {
	PoolID       string
	Meta         map[string]string
	AddressSpace string
	Pool         string
	Gateway      string
	GwFromIPAM   bool
	Aux          map[string]string
	AuxFromIPAM  map[string]bool
}

type networkRecord struct {
	ID, Name, Type string
	Created        time.Time
	Scope          string
	IpamType       string
	AddrSpace      string
	IpamOptions    map[string]string
	IpamV4Config   []*IpamConf
	IpamV6Config   []*IpamConf
	IpamV4Info     []ipamInfoRecord
	IpamV6Info     []ipamInfoRecord
	Generic        map[string]any
	EnableIPv6     bool
	Internal       bool
	Labels         map[string]string
}

type endpointRecord struct {
	ID, Name, NetworkID string
	MacAddress          string
	Address, AddressV6  string
	V4PoolID, V6PoolID  string
	ExposedPorts        []types.TransportPort
	PortMapping         []types.PortBinding
	MyAliases           []string
	DisableResolution   bool
	SandboxID           string
}

type sandboxRecord struct {
	ID, ContainerID, Key string
	Endpoints            []string // joined endpoint IDs, in order
	Priorities           map[string]int
	ExternalKey          bool
	DefaultSandbox       bool
}

func (c *Controller) persistNetwork(n *Network) error {
	if !n.persist {
		return nil
	}
	r := networkRecord{
		ID: n.id, Name: n.name, Type: n.networkType, Created: n.created, Scope: n.scope,
		IpamType: n.ipamType, AddrSpace: n.addrSpace, IpamOptions: n.ipamOptions,
		IpamV4Config: n.ipamV4Config, IpamV6Config: n.ipamV6Config,
		IpamV4Info: infoRecords(n.ipamV4Info), IpamV6Info: infoRecords(n.ipamV6Info),
		Generic: n.generic, EnableIPv6: n.enableIPv6, Internal: n.internal, Labels: n.labels,
	}
	return c.put(kindNetwork, n.id, r)
}

func infoRecords(infos []*IpamInfo) []ipamInfoRecord {
	var out []ipamInfoRecord
	for _, i := range infos {
		r := ipamInfoRecord{PoolID: i.PoolID, Meta: i.Meta, AddressSpace: i.AddressSpace,
			Pool: netString(i.Pool), Gateway: netString(i.Gateway), GwFromIPAM: i.gwFromIPAM,
			AuxFromIPAM: i.auxFromIPAM}
		if len(i.AuxAddresses) > 0 {
			r.Aux = map[string]string{}
			for k, v := range i.AuxAddresses {
				r.Aux[k] = netString(v)
			}
		}
		out = append(out, r)
	}
	return out
}

func netString(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func (c *Controller) persistEndpoint(ep *Endpoint) error {
	if !ep.network.persist {
		return nil
	}
	c.mu.Lock()
	r := endpointRecord{
		ID: ep.id, Name: ep.name, NetworkID: ep.network.id,
		Address: netString(ep.iface.addr), AddressV6: netString(ep.iface.addrv6),
		V4PoolID: ep.iface.v4PoolID, V6PoolID: ep.iface.v6PoolID,
		ExposedPorts: ep.exposedPorts, PortMapping: ep.portMapping, MyAliases: ep.myAliases,
		DisableResolution: ep.disableResolution, SandboxID: ep.sandboxID,
	}
	if ep.iface.mac != nil {
		r.MacAddress = ep.iface.mac.String()
	}
	c.mu.Unlock()
	return c.put(kindEndpoint, ep.id, r)
}

func (c *Controller) persistSandbox(sb *Sandbox) error {
	c.mu.Lock()
	r := sandboxRecord{ID: sb.id, ContainerID: sb.containerID, Key: sb.key, Priorities: map[string]int{},
		ExternalKey: sb.cfg.useExternalKey, DefaultSandbox: sb.cfg.useDefaultSandbox}
	for _, ep := range sb.endpoints {
		r.Endpoints = append(r.Endpoints, ep.id)
		r.Priorities[ep.id] = sb.prio[ep.id]
	}
	c.mu.Unlock()
	return c.put(kindSandbox, sb.id, r)
}

func (c *Controller) put(kind, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return types.InternalErrorf("encoding %s record %s: %w", kind, id, err)
	}
	if err := c.store.Put(kind, id, b); err != nil {
		return types.Wrapf(err, "storing %s record %s", kind, id)
	}
	return nil
}

func (c *Controller) unpersist(kind, id string) error {
	if err := c.store.Delete(kind, id); err != nil {
		return types.Wrapf(err, "deleting %s record %s", kind, id)
	}
	return nil
}
