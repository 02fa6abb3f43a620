package libnetwork

import (
	"net"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

func infoRecords(infos []*IpamInfo) []records.IpamInfo {
	var out []records.IpamInfo
	for _, i := range infos {
		r := records.IpamInfo{PoolID: i.PoolID, Meta: i.Meta, AddressSpace: i.AddressSpace,
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

// confRecords is the stored form of IPAM configurations (nil stays nil,
// empty stays empty).
func confRecords(confs []*IpamConf) []*records.IpamConf {
	if confs == nil {
		return nil
	}
	out := make([]*records.IpamConf, 0, len(confs))
	for _, c := range confs {
		if c == nil {
			out = append(out, nil)
			continue
		}
		r := records.IpamConf(*c)
		out = append(out, &r)
	}
	return out
}

// confsFromRecords is the inverse of confRecords.
func confsFromRecords(recs []*records.IpamConf) []*IpamConf {
	if recs == nil {
		return nil
	}
	out := make([]*IpamConf, 0, len(recs))
	for _, r := range recs {
		if r == nil {
			out = append(out, nil)
			continue
		}
		c := IpamConf(*r)
		out = append(out, &c)
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
func (c *Controller) networkOp(n *Network, state records.State) (*store.Op, error) {
	if !n.persist {
		return nil, nil
	}
	gen, err := records.EncodeGeneric(n.generic)
	if err != nil {
		return nil, types.BadRequestErrorf("options of network %s cannot be stored: %w", n.name, err)
	}
	r := records.Network{
		ID: n.id, Name: n.name, Type: n.networkType, State: state, Created: n.created, Scope: n.scope,
		IpamType: n.ipamType, AddrSpace: n.addrSpace, IpamOptions: n.ipamOptions,
		IpamV4Config: confRecords(n.ipamV4Config), IpamV6Config: confRecords(n.ipamV6Config),
		IpamV4Info: infoRecords(n.ipamV4Info), IpamV6Info: infoRecords(n.ipamV6Info),
		Generic: gen, EnableIPv6: n.enableIPv6, NoIPv4: n.disableIPv4, Internal: n.internal, Labels: n.labels,
		ClusterIDs: n.clusterIDs,
	}
	return encodeOp(records.KindNetwork, n.id, r)
}

// endpointOp records ep as it is now (its join state included).
func (c *Controller) endpointOp(ep *Endpoint, state records.State) (*store.Op, error) {
	if !ep.network.persist {
		return nil, nil
	}
	gen, err := records.EncodeGeneric(ep.generic)
	if err != nil {
		return nil, types.BadRequestErrorf("options of endpoint %s cannot be stored: %w", ep.name, err)
	}
	c.mu.Lock()
	r := records.Endpoint{
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
		jr := &records.Join{Gw: ipStr(js.gw), Gw6: ipStr(js.gw6), NoGwSvc: js.noGwSvc,
			SrcName: js.srcName, DstPrefix: js.dstPrefix, DstName: js.dstName}
		for _, rt := range js.routes {
			jr.Routes = append(jr.Routes, records.Route{Destination: netString(rt.Destination),
				RouteType: rt.RouteType, NextHop: ipStr(rt.NextHop)})
		}
		r.Join = jr
	}
	c.mu.Unlock()
	return encodeOp(records.KindEndpoint, ep.id, r)
}

func (c *Controller) sandboxOp(sb *Sandbox) (*store.Op, error) {
	c.mu.Lock()
	r := records.Sandbox{ID: sb.id, ContainerID: sb.containerID, Key: sb.key, Priorities: map[string]int{},
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
	return encodeOp(records.KindSandbox, sb.id, r)
}

func deleteOp(kind, id string) (*store.Op, error) { return &store.Op{Kind: kind, ID: id}, nil }

func encodeOp(kind, id string, v any) (*store.Op, error) {
	b, err := records.Encode(kind, id, v)
	if err != nil {
		return nil, err
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
func (c *Controller) recNetwork(n *Network, state records.State) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.networkOp(n, state) }
}
func (c *Controller) recEndpoint(ep *Endpoint, state records.State) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.endpointOp(ep, state) }
}
func (c *Controller) recSandbox(sb *Sandbox) func() (*store.Op, error) {
	return func() (*store.Op, error) { return c.sandboxOp(sb) }
}
func recDelete(kind, id string) func() (*store.Op, error) {
	return func() (*store.Op, error) { return deleteOp(kind, id) }
}
