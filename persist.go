package libnetwork

import (
	"encoding/json"
	"net"
	"time"

	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// Record kinds in the store.
const (
	kindNetwork  = "network"
	kindEndpoint = "endpoint"
	kindSandbox  = "sandbox"
)

// Record states. A record is written in an intent state before the kernel
// is changed where a crash half-way would otherwise leave the restore
// guessing, and confirmed ("") after. Everything the kernel holds for a
// record is also tagged with its ID (bridge and veth aliases, rule
// comments), so what a crash leaves without a record is found and removed.
const (
	stateReady    = ""
	stateCreating = "creating" // network: pools taken, driver may have made its bridge
	stateJoining  = "joining"  // endpoint: the driver may have wired it into SandboxID
	// endpoint: a Leave from SandboxID that moves the sandbox's gateway to
	// another endpoint began (the default route and published ports may
	// have moved already); the next start finishes it.
	stateLeaving = "leaving"
)

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
	State          string
	Created        time.Time
	Scope          string
	IpamType       string
	AddrSpace      string
	IpamOptions    map[string]string
	IpamV4Config   []*IpamConf
	IpamV6Config   []*IpamConf
	IpamV4Info     []ipamInfoRecord
	IpamV6Info     []ipamInfoRecord
	Generic        map[string]typedValue
	EnableIPv6     bool
	NoIPv4         bool `json:",omitempty"`
	Internal       bool
	Labels         map[string]string
}

type routeRecord struct {
	Destination string
	RouteType   int
	NextHop     string
}

type joinRecord struct {
	Gw, Gw6   string
	Routes    []routeRecord
	NoGwSvc   bool
	SrcName   string
	DstPrefix string
	DstName   string
}

type endpointRecord struct {
	ID, Name, NetworkID string
	State               string
	MacAddress          string
	Address, AddressV6  string
	LinkLocal           []string `json:",omitempty"`
	V4PoolID, V6PoolID  string
	Generic             map[string]typedValue
	ExposedPorts        []types.TransportPort
	PortMapping         []types.PortBinding
	MyAliases           []string
	DisableResolution   bool
	SandboxID           string
	Join                *joinRecord
	OperPorts           []types.PortBinding // host ports actually published, kept across restarts
}

type sandboxRecord struct {
	ID, ContainerID, Key string
	Endpoints            []string // joined endpoint IDs, in order
	Priorities           map[string]int
	ExternalKey          bool
	DefaultSandbox       bool
	KeySet               bool // an external key was set
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

func ipStr(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

// networkOp is the store change recording n in state; nil for a network
// kept in memory only.
func (c *Controller) networkOp(n *Network, state string) (*store.Op, error) {
	if !n.persist {
		return nil, nil
	}
	gen, err := encodeGeneric(n.generic)
	if err != nil {
		return nil, types.BadRequestErrorf("options of network %s cannot be stored: %w", n.name, err)
	}
	r := networkRecord{
		ID: n.id, Name: n.name, Type: n.networkType, State: state, Created: n.created, Scope: n.scope,
		IpamType: n.ipamType, AddrSpace: n.addrSpace, IpamOptions: n.ipamOptions,
		IpamV4Config: n.ipamV4Config, IpamV6Config: n.ipamV6Config,
		IpamV4Info: infoRecords(n.ipamV4Info), IpamV6Info: infoRecords(n.ipamV6Info),
		Generic: gen, EnableIPv6: n.enableIPv6, NoIPv4: n.disableIPv4, Internal: n.internal, Labels: n.labels,
	}
	return encodeOp(kindNetwork, n.id, r)
}

// endpointOp records ep as it is now (its join state included).
func (c *Controller) endpointOp(ep *Endpoint, state string) (*store.Op, error) {
	if !ep.network.persist {
		return nil, nil
	}
	gen, err := encodeGeneric(ep.generic)
	if err != nil {
		return nil, types.BadRequestErrorf("options of endpoint %s cannot be stored: %w", ep.name, err)
	}
	c.mu.Lock()
	r := endpointRecord{
		ID: ep.id, Name: ep.name, NetworkID: ep.network.id, State: state,
		Address: netString(ep.iface.addr), AddressV6: netString(ep.iface.addrv6),
		V4PoolID: ep.iface.v4PoolID, V6PoolID: ep.iface.v6PoolID, Generic: gen,
		ExposedPorts: ep.exposedPorts, PortMapping: ep.portMapping, MyAliases: ep.myAliases,
		DisableResolution: ep.disableResolution, SandboxID: ep.sandboxID, OperPorts: ep.operPorts,
	}
	if ep.iface.mac != nil {
		r.MacAddress = ep.iface.mac.String()
	}
	for _, ll := range ep.iface.llAddrs {
		r.LinkLocal = append(r.LinkLocal, ll.String())
	}
	if js := ep.join; js != nil {
		jr := &joinRecord{Gw: ipStr(js.gw), Gw6: ipStr(js.gw6), NoGwSvc: js.noGwSvc,
			SrcName: js.srcName, DstPrefix: js.dstPrefix, DstName: js.dstName}
		for _, rt := range js.routes {
			jr.Routes = append(jr.Routes, routeRecord{Destination: netString(rt.Destination),
				RouteType: rt.RouteType, NextHop: ipStr(rt.NextHop)})
		}
		r.Join = jr
	}
	c.mu.Unlock()
	return encodeOp(kindEndpoint, ep.id, r)
}

func (c *Controller) sandboxOp(sb *Sandbox) (*store.Op, error) {
	c.mu.Lock()
	r := sandboxRecord{ID: sb.id, ContainerID: sb.containerID, Key: sb.key, Priorities: map[string]int{},
		ExternalKey: sb.cfg.useExternalKey, DefaultSandbox: sb.cfg.useDefaultSandbox,
		KeySet: sb.cfg.useExternalKey && sb.osSbox != nil}
	for _, ep := range sb.endpoints {
		if !ep.network.persist {
			continue
		}
		r.Endpoints = append(r.Endpoints, ep.id)
		r.Priorities[ep.id] = sb.prio[ep.id]
	}
	c.mu.Unlock()
	return encodeOp(kindSandbox, sb.id, r)
}

func deleteOp(kind, id string) (*store.Op, error) { return &store.Op{Kind: kind, ID: id}, nil }

func encodeOp(kind, id string, v any) (*store.Op, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, types.InternalErrorf("encoding %s record %s: %w", kind, id, err)
	}
	return &store.Op{Kind: kind, ID: id, Value: b}, nil
}

// commit applies the changes built by the *Op functions in one durable
// write. An error from building any of them is returned before anything is
// written.
func (c *Controller) commit(ops ...func() (*store.Op, error)) error {
	var batch []store.Op
	for _, f := range ops {
		op, err := f()
		if err != nil {
			return err
		}
		if op != nil {
			batch = append(batch, *op)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	if err := c.store.Apply(batch...); err != nil {
		return types.Wrapf(err, "storing state")
	}
	return nil
}

// Shorthands for commit's arguments.
func (c *Controller) recNetwork(n *Network, state string) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.networkOp(n, state) }
}
func (c *Controller) recEndpoint(ep *Endpoint, state string) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.endpointOp(ep, state) }
}
func (c *Controller) recSandbox(sb *Sandbox) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.sandboxOp(sb) }
}
func recDelete(kind, id string) func() (*store.Op, error) {
	return func() (*store.Op, error) { return deleteOp(kind, id) }
}
