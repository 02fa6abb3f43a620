package macvlan

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/optval"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Driver option keys, upstream's.
const (
	// ParentOpt names the host interface the network's macvlans hang off.
	ParentOpt = "parent"
	// ModeOpt is the macvlan mode: bridge (the default), private, vepa or
	// passthru.
	ModeOpt = "macvlan_mode"
)

// Modes, as the kernel names them.
const (
	ModeBridge   = "bridge"
	ModePrivate  = "private"
	ModeVEPA     = "vepa"
	ModePassthru = "passthru"
)

var modes = map[string]netlink.MacvlanMode{
	ModeBridge:   netlink.MACVLAN_MODE_BRIDGE,
	ModePrivate:  netlink.MACVLAN_MODE_PRIVATE,
	ModeVEPA:     netlink.MACVLAN_MODE_VEPA,
	ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
}

const containerIfacePrefix = "eth"

// networkConfig is one network's configuration, decoded once at
// CreateNetwork and never changed after, so it may be read without the
// driver lock.
type networkConfig struct {
	ID         string
	Parent     string // as given; "" makes an internal network on a stand-in
	Mode       string // one of modes' keys
	Mtu        int    // 0: the parent's
	Internal   bool   // no gateway; set for a network without parent
	EnableIPv4 bool
	EnableIPv6 bool

	Pool4, Pool6 *net.IPNet
	Gateway4     net.IP
	Gateway6     net.IP
}

func (c *networkConfig) mode() netlink.MacvlanMode { return modes[c.Mode] }

// parseNetworkOptions decodes a CreateNetworkRequest's option map: the
// netlabel flags at its top level, the driver options (map[string]string
// as Docker passes them, or options.Generic / map[string]any with the
// same keys) under netlabel.GenericData. Keys of other drivers are not the
// driver's business and are ignored.
func parseNetworkOptions(nid string, opts map[string]any) (*networkConfig, error) {
	what := "creating macvlan network " + nid
	if err := names.ID(nid); err != nil {
		return nil, types.Wrapf(err, "%s: network id", what)
	}
	c := &networkConfig{ID: nid, EnableIPv4: true, Mode: ModeBridge}
	for key, dst := range map[string]*bool{netlabel.EnableIPv4: &c.EnableIPv4, netlabel.EnableIPv6: &c.EnableIPv6, netlabel.Internal: &c.Internal} {
		if v, ok := opts[key]; ok {
			b, err := toBool(v)
			if err != nil {
				return nil, types.BadRequestErrorf("%s: option %s: %w", what, key, err)
			}
			*dst = b
		}
	}
	g, err := optval.DriverOptions(what, opts)
	if err != nil {
		return nil, err
	}
	for key, v := range g {
		var err error
		switch key {
		case ParentOpt:
			c.Parent, err = toString(v)
			c.Parent = strings.TrimSpace(c.Parent)
		case ModeOpt:
			c.Mode, err = toString(v)
			if err == nil && c.Mode == "" {
				c.Mode = ModeBridge
			}
		case netlabel.DriverMTU, "Mtu": // "Mtu": the bridge driver's key, accepted alike
			c.Mtu, err = optval.Int(v)
		}
		if err != nil {
			return nil, types.BadRequestErrorf("%s: option %s: %w", what, key, err)
		}
	}
	if _, ok := modes[c.Mode]; !ok {
		return nil, types.BadRequestErrorf("%s: option %s: unknown mode %q (want %s, %s, %s or %s)", what, ModeOpt, c.Mode, ModeBridge, ModePrivate, ModeVEPA, ModePassthru)
	}
	if c.Mtu != 0 && (c.Mtu < 68 || c.Mtu > 65535) {
		return nil, types.BadRequestErrorf("%s: option %s: mtu %d is outside 68-65535", what, netlabel.DriverMTU, c.Mtu)
	}
	switch {
	case c.Parent == "":
		// Upstream's rule: no parent means an internal network.
		c.Internal = true
	case c.Parent == "lo":
		return nil, types.BadRequestErrorf("%s: option %s: the loopback interface cannot be a macvlan parent", what, ParentOpt)
	default:
		if err := names.Iface(c.Parent); err != nil {
			return nil, types.Wrapf(err, "%s: option %s", what, ParentOpt)
		}
	}
	if !c.EnableIPv4 && !c.EnableIPv6 {
		return nil, types.BadRequestErrorf("%s: neither IPv4 nor IPv6 is enabled", what)
	}
	return c, nil
}

// applyIPAM takes the first pool of each family and its gateway.
func (c *networkConfig) applyIPAM(v4, v6 []driverapi.IPAMData) error {
	what := "creating macvlan network " + c.ID
	if c.EnableIPv4 && len(v4) > 0 && v4[0].Pool != nil {
		c.Pool4 = maskedCopy(v4[0].Pool)
		c.Gateway4 = ipCopy(v4[0].Gateway)
		if c.Gateway4 != nil && !c.Pool4.Contains(c.Gateway4) {
			return types.BadRequestErrorf("%s: gateway %s is outside subnet %s", what, c.Gateway4, c.Pool4)
		}
	}
	if c.EnableIPv6 && len(v6) > 0 && v6[0].Pool != nil {
		c.Pool6 = maskedCopy(v6[0].Pool)
		c.Gateway6 = ipCopy(v6[0].Gateway)
		if c.Gateway6 != nil && !c.Pool6.Contains(c.Gateway6) {
			return types.BadRequestErrorf("%s: gateway %s is outside subnet %s", what, c.Gateway6, c.Pool6)
		}
	}
	return nil
}

func maskedCopy(n *net.IPNet) *net.IPNet {
	return &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: append(net.IPMask(nil), n.Mask...)}
}

func toString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, not %T", v)
	}
	return s, nil
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	return false, fmt.Errorf("want a bool, not %T", v)
}
