package libnetwork

import (
	"net"
	"net/netip"
	"strings"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// replayPools takes back the network's pools, gateways and aux addresses
// from the records. An IPAM driver whose capabilities ask for replay (the
// built-in allocator, whose state is in memory) is asked again for exactly
// them, so nothing it held can be handed out twice; an answer other than
// the record is given back and fails. Other drivers (plugins keeping their
// own state, which refuse a pool they already gave) are asked nothing.
func (n *Network) replayPools(recs []records.IpamInfo, v6 bool, undo *undo.Stack) ([]*IpamInfo, error) {
	replay := n.ipamReplays()
	var infos []*IpamInfo
	for _, r := range recs {
		info, err := infoFromRecord(r)
		if err != nil {
			return nil, err
		}
		if replay {
			if err := n.replayPool(info, r, v6, undo); err != nil {
				return nil, err
			}
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// infoFromRecord is the pool r records, as recorded.
func infoFromRecord(r records.IpamInfo) (*IpamInfo, error) {
	info := &IpamInfo{PoolID: r.PoolID, Meta: r.Meta, gwFromIPAM: r.GwFromIPAM, auxFromIPAM: r.AuxFromIPAM}
	info.AddressSpace = r.AddressSpace
	if r.Pool != "" {
		pool, err := netip.ParsePrefix(r.Pool)
		if err != nil {
			return nil, types.InternalErrorf("decoding pool %q: %w", r.Pool, err)
		}
		info.Pool = prefixToIPNet(pool)
	}
	var err error
	if r.Gateway != "" {
		if info.Gateway, err = types.ParseCIDR(r.Gateway); err != nil {
			return nil, err
		}
	}
	if len(r.Aux) > 0 {
		info.AuxAddresses = map[string]*net.IPNet{}
		for name, s := range r.Aux {
			if info.AuxAddresses[name], err = types.ParseCIDR(s); err != nil {
				return nil, err
			}
		}
	}
	return info, nil
}

// ipamReplays reports whether the restore asks the network's IPAM driver
// again for what the records name. A driver missing at restore is not
// asked, nor looked up again for its capabilities (a plugin that hangs
// would cost a timeout per endpoint).
func (n *Network) ipamReplays() bool {
	if _, absent := n.ipam.Ipam.(*absentIPAM); absent {
		return false
	}
	return n.ipam.Capabilities().RequiresRequestReplay
}

// replayPool asks IPAM again for the pool of r and the gateway and aux
// addresses it handed out in it, pushing their release onto undo.
func (n *Network) replayPool(info *IpamInfo, r records.IpamInfo, v6 bool, undo *undo.Stack) error {
	pool, sub := r.Pool, ""
	if _, rest, found := strings.Cut(r.PoolID, r.Pool+"/"); found {
		sub = rest // "<space>/<pool>/<subpool>" from the built-in allocator
	}
	got, err := n.ipam.RequestPool(ipamapi.PoolRequest{AddressSpace: r.AddressSpace, Pool: pool,
		SubPool: sub, Options: n.ipamOptions, V6: v6})
	if err != nil {
		return types.Wrapf(err, "re-reserving pool %s", pool)
	}
	if info.Pool == nil {
		info.Pool = prefixToIPNet(got.Pool)
	} else if got.Pool.String() != ipNetToPrefix(info.Pool).String() {
		_ = n.ipam.ReleasePool(got.PoolID)
		return types.InternalErrorf("re-reserving pool %s: IPAM driver %s answered pool %s", pool, n.ipamType, got.Pool)
	}
	info.PoolID = got.PoolID
	undo.PushFunc(func() { n.releaseInfo(info) })
	// releaseInfo gives back what the flags name: set each only once held.
	gwFromIPAM, auxFromIPAM := info.gwFromIPAM, info.auxFromIPAM
	info.gwFromIPAM, info.auxFromIPAM = false, map[string]bool{}
	if info.Gateway != nil && gwFromIPAM {
		gwOpts := map[string]string{ipamapi.RequestAddressType: netlabel.Gateway}
		if err := n.requestExact(info.PoolID, ipToAddr(info.Gateway.IP), gwOpts); err != nil {
			return types.Wrapf(err, "re-reserving gateway %s", r.Gateway)
		}
		info.gwFromIPAM = true
	}
	for name, a := range info.AuxAddresses {
		if auxFromIPAM[name] {
			if err := n.requestExact(info.PoolID, ipToAddr(a.IP), nil); err != nil {
				return types.Wrapf(err, "re-reserving aux address %s", r.Aux[name])
			}
			info.auxFromIPAM[name] = true
		}
	}
	return nil
}
