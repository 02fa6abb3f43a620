package bridge

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// String labels of the bridge driver's network options, with Docker's values.
// They are the keys of the map[string]string a user passes as driver options.
const (
	BridgeName         = netlabel.Prefix + ".bridge.name"
	EnableIPMasquerade = netlabel.Prefix + ".bridge.enable_ip_masquerade"
	EnableICC          = netlabel.Prefix + ".bridge.enable_icc"
	InhibitIPv4        = netlabel.Prefix + ".bridge.inhibit_ipv4"
	DefaultBindingIP   = netlabel.Prefix + ".bridge.host_binding_ipv4"
	DefaultBridge      = netlabel.Prefix + ".bridge.default_bridge"
	// GatewayModeIPv4/IPv6 take "nat" (the default: only published ports
	// reach a container from other hosts), "nat-unprotected" (whoever
	// routes the subnet via this host reaches every container port),
	// "routed" (no NAT in the family: published container ports are
	// reached at the containers' addresses, no host port is taken) or,
	// on an internal network, "isolated" (the bridge gets no address in
	// the family, so the host and the containers do not reach each
	// other).
	GatewayModeIPv4 = netlabel.BridgeGatewayModeIPv4
	GatewayModeIPv6 = netlabel.BridgeGatewayModeIPv6
	// TrustedHostInterfaces lists host interfaces, separated by ':',
	// whose traffic may reach the containers' addresses directly.
	TrustedHostInterfaces = netlabel.BridgeTrustedHostInterfaces
)

// Aux address keys through which IPAM data names a container default
// gateway distinct from the bridge's own address.
const (
	auxDefaultGatewayIPv4 = "DefaultGatewayIPv4"
	auxDefaultGatewayIPv6 = "DefaultGatewayIPv6"
)

const (
	defaultIfacePrefix = "eth"
	defaultBridgeName  = "docker0"
)

// driverConfig is the driver-wide configuration, decoded once in New.
type driverConfig struct {
	EnableIPForwarding  bool
	EnableIPTables      bool
	EnableIP6Tables     bool
	EnableUserlandProxy bool
	UserlandProxyPath   string
}

// networkConfig is one network's configuration, decoded once at
// CreateNetwork from the string-label or struct-field-name options plus the
// IPAM data. It is never changed after CreateNetwork, so it may be read
// without the driver lock.
type networkConfig struct {
	ID                   string
	BridgeName           string
	EnableIPv4           bool // false: IPv6-only (moby 28)
	EnableIPv6           bool
	EnableIPMasquerade   bool
	EnableICC            bool
	InhibitIPv4          bool
	Mtu                  int
	DefaultBindingIP     net.IP
	DefaultBridge        bool
	HostIP               net.IP
	ContainerIfacePrefix string
	Internal             bool
	// GatewayModeIPv4/IPv6 as given ("" is nat); TrustedHostInterfaces
	// as given, TrustedIfaces split from it by validateOptions.
	GatewayModeIPv4       string
	GatewayModeIPv6       string
	TrustedHostInterfaces string
	TrustedIfaces         []string

	// From IPAM. AddressIPv4/IPv6 are the bridge's addresses (the IPAM
	// gateway with the pool's mask); PoolIPv4/IPv6 the masked pools.
	PoolIPv4, PoolIPv6       *net.IPNet
	AddressIPv4, AddressIPv6 *net.IPNet
	DefaultGatewayIPv4       net.IP
	DefaultGatewayIPv6       net.IP
}

// optSpec ties one option's struct field name (the options.Generic form)
// to its string label (the driver-opts form) and to where it is stored.
type optSpec struct {
	field string
	label string
	ptr   func(c *networkConfig) any // *bool, *int, *string or *net.IP
}

var networkOptSpecs = []optSpec{
	{"BridgeName", BridgeName, func(c *networkConfig) any { return &c.BridgeName }},
	{"EnableIPv4", netlabel.EnableIPv4, func(c *networkConfig) any { return &c.EnableIPv4 }},
	{"EnableIPv6", netlabel.EnableIPv6, func(c *networkConfig) any { return &c.EnableIPv6 }},
	{"EnableIPMasquerade", EnableIPMasquerade, func(c *networkConfig) any { return &c.EnableIPMasquerade }},
	{"EnableICC", EnableICC, func(c *networkConfig) any { return &c.EnableICC }},
	{"InhibitIPv4", InhibitIPv4, func(c *networkConfig) any { return &c.InhibitIPv4 }},
	{"Mtu", netlabel.DriverMTU, func(c *networkConfig) any { return &c.Mtu }},
	{"DefaultBindingIP", DefaultBindingIP, func(c *networkConfig) any { return &c.DefaultBindingIP }},
	{"DefaultBridge", DefaultBridge, func(c *networkConfig) any { return &c.DefaultBridge }},
	{"HostIP", netlabel.HostIP, func(c *networkConfig) any { return &c.HostIP }},
	{"ContainerIfacePrefix", netlabel.ContainerIfacePrefix, func(c *networkConfig) any { return &c.ContainerIfacePrefix }},
	{"Internal", netlabel.Internal, func(c *networkConfig) any { return &c.Internal }},
	{"GatewayModeIPv4", GatewayModeIPv4, func(c *networkConfig) any { return &c.GatewayModeIPv4 }},
	{"GatewayModeIPv6", GatewayModeIPv6, func(c *networkConfig) any { return &c.GatewayModeIPv6 }},
	{"TrustedHostInterfaces", TrustedHostInterfaces, func(c *networkConfig) any { return &c.TrustedHostInterfaces }},
}

func findSpec(key string) *optSpec {
	for i := range networkOptSpecs {
		if s := &networkOptSpecs[i]; s.field == key || s.label == key {
			return s
		}
	}
	return nil
}

// parseNetworkOptions decodes a CreateNetworkRequest's option map.
//
// ICC and masquerade default to true on every path. Upstream defaults them
// to true only for string labels and to false for options.Generic (Go zero
// values); a network nobody asked to isolate should not silently lose
// container-to-container traffic, so this driver treats both alike.
func parseNetworkOptions(nid string, opts map[string]any) (*networkConfig, error) {
	c := &networkConfig{ID: nid, EnableIPv4: true, EnableICC: true, EnableIPMasquerade: true}
	for _, key := range []string{netlabel.EnableIPv4, netlabel.EnableIPv6, netlabel.Internal} {
		if v, ok := opts[key]; ok {
			if err := assign(findSpec(key).ptr(c), key, v); err != nil {
				return nil, err
			}
		}
	}
	switch g := opts[netlabel.GenericData].(type) {
	case nil:
	case map[string]string:
		// Driver opts carry labels of every driver and of the user; keys
		// the bridge does not know are not its business.
		for k, v := range g {
			if s := findSpec(k); s != nil {
				if err := assign(s.ptr(c), k, v); err != nil {
					return nil, err
				}
			}
		}
	case options.Generic:
		if err := decodeFields(c, g); err != nil {
			return nil, err
		}
	case map[string]any:
		if err := decodeFields(c, g); err != nil {
			return nil, err
		}
	default:
		return nil, types.BadRequestErrorf("parsing bridge network options: unsupported type %T for %s", g, netlabel.GenericData)
	}
	if err := c.validateOptions(); err != nil {
		return nil, err
	}
	return c, nil
}

// ValidateNetwork checks a network's ID and options as CreateNetwork
// would, before the controller allocates anything for it
// (driverapi.NetworkValidator).
func (d *Driver) ValidateNetwork(nid string, opts map[string]any) error {
	_, err := parseNetworkOptions(nid, opts)
	return err
}

// decodeFields applies the struct-field-name form. Label keys are accepted
// too; an unknown bare field name is an error (as upstream's reflection
// decoder reports it), an unknown dotted label is ignored.
func decodeFields(c *networkConfig, g map[string]any) error {
	for k, v := range g {
		s := findSpec(k)
		if s == nil {
			if strings.Contains(k, ".") {
				continue
			}
			return types.BadRequestErrorf("parsing bridge network options: unknown option %q", k)
		}
		if err := assign(s.ptr(c), k, v); err != nil {
			return err
		}
	}
	return nil
}

// assign stores v, given as its own type or as a string, into dst.
func assign(dst any, name string, v any) error {
	bad := func(err error) error {
		if err != nil {
			return types.BadRequestErrorf("parsing bridge option %s: invalid value %v: %w", name, v, err)
		}
		return types.BadRequestErrorf("parsing bridge option %s: invalid value %v of type %T", name, v, v)
	}
	switch d := dst.(type) {
	case *bool:
		switch x := v.(type) {
		case bool:
			*d = x
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return bad(err)
			}
			*d = b
		default:
			return bad(nil)
		}
	case *int:
		switch x := v.(type) {
		case int:
			*d = x
		case int64:
			*d = int(x)
		case float64: // what encoding/json gives
			if x != math.Trunc(x) {
				return bad(nil)
			}
			*d = int(x)
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(x))
			if err != nil {
				return bad(err)
			}
			*d = n
		default:
			return bad(nil)
		}
	case *string:
		x, ok := v.(string)
		if !ok {
			return bad(nil)
		}
		*d = x
	case *net.IP:
		switch x := v.(type) {
		case net.IP:
			*d = x
		case string:
			if x == "" {
				*d = nil
				return nil
			}
			ip := net.ParseIP(x)
			if ip == nil {
				return bad(fmt.Errorf("not an IP address"))
			}
			*d = ip
		default:
			return bad(nil)
		}
	default:
		return types.InternalErrorf("parsing bridge option %s: unsupported destination %T", name, dst)
	}
	return nil
}

// validateOptions checks what the options alone decide and fills defaults.
func (c *networkConfig) validateOptions() error {
	if !c.EnableIPv4 && !c.EnableIPv6 {
		return types.BadRequestErrorf("invalid bridge options: %s=false needs %s", netlabel.EnableIPv4, netlabel.EnableIPv6)
	}
	if c.Mtu < 0 || c.Mtu > 65535 {
		return types.BadRequestErrorf("invalid bridge option %s: mtu %d out of range", netlabel.DriverMTU, c.Mtu)
	}
	// The network ID becomes the bridge's alias and its rules' owner; the
	// bridge name an interface match in those rules, where "+" would be a
	// wildcard (names).
	if err := names.ID(c.ID); err != nil {
		return types.Wrapf(err, "invalid bridge network id")
	}
	if c.BridgeName == "" {
		if c.DefaultBridge {
			c.BridgeName = defaultBridgeName
		} else {
			c.BridgeName = "br-" + c.ID[:min(12, len(c.ID))]
		}
	}
	if err := names.Iface(c.BridgeName); err != nil {
		return types.Wrapf(err, "invalid bridge option %s", BridgeName)
	}
	if c.ContainerIfacePrefix == "" {
		c.ContainerIfacePrefix = defaultIfacePrefix
	}
	if err := names.IfacePrefix(c.ContainerIfacePrefix); err != nil {
		return types.Wrapf(err, "invalid bridge option %s", netlabel.ContainerIfacePrefix)
	}
	if c.HostIP != nil && c.HostIP.To4() == nil {
		return types.BadRequestErrorf("invalid bridge option %s: %s is not an IPv4 address", netlabel.HostIP, c.HostIP)
	}
	return c.validateProtection()
}

// gatewayIsolated is moby's gateway mode of an internal network whose
// bridge has no address in the family: the host neither reaches the
// containers nor is reached by them there. It is the driver's, not the
// firewall's (an internal network's rules are the same).
const gatewayIsolated = string(firewall.GatewayIsolated)

// isolated reports whether the bridge carries no address of family v6 or
// v4.
func (c *networkConfig) isolated(v6 bool) bool {
	if v6 {
		return c.GatewayModeIPv6 == gatewayIsolated
	}
	return c.GatewayModeIPv4 == gatewayIsolated
}

// validateProtection checks the gateway modes and trusted interfaces.
func (c *networkConfig) validateProtection() error {
	for _, m := range []struct{ label, v string }{{GatewayModeIPv4, c.GatewayModeIPv4}, {GatewayModeIPv6, c.GatewayModeIPv6}} {
		switch firewall.GatewayMode(m.v) {
		case "", firewall.GatewayNAT:
		case firewall.GatewayNATUnprotected:
			if c.Internal {
				return types.BadRequestErrorf("invalid bridge option %s: %q has no meaning on an internal network", m.label, m.v)
			}
		case firewall.GatewayIsolated:
			if !c.Internal {
				return types.BadRequestErrorf("invalid bridge option %s: %q needs an internal network (%s)", m.label, m.v, netlabel.Internal)
			}
		case firewall.GatewayRouted:
			if c.Internal {
				return types.BadRequestErrorf("invalid bridge option %s: %q has no meaning on an internal network", m.label, m.v)
			}
		default:
			return types.BadRequestErrorf("invalid bridge option %s: unknown gateway mode %q (nat, nat-unprotected, routed, isolated)", m.label, m.v)
		}
	}
	c.TrustedIfaces = nil
	if c.TrustedHostInterfaces == "" {
		return nil
	}
	if c.Internal {
		return types.BadRequestErrorf("invalid bridge option %s: an internal network is reached from no host interface", TrustedHostInterfaces)
	}
	for _, name := range strings.Split(c.TrustedHostInterfaces, ":") {
		if err := names.Iface(name); err != nil {
			return types.BadRequestErrorf("invalid bridge option %s: %w", TrustedHostInterfaces, err)
		}
		if name == c.BridgeName {
			return types.BadRequestErrorf("invalid bridge option %s: %q is the network's own bridge", TrustedHostInterfaces, name)
		}
		c.TrustedIfaces = append(c.TrustedIfaces, name)
	}
	return nil
}

// LabelPrefix starts the daemon labels (config.OptionLabels) that the
// controller passes into the bridge driver's configuration, as upstream
// does for com.docker.network.driver.<type>.* labels: the rest of the key
// is a driver option name (EnableIPTables, EnableUserlandProxy, ...), the
// label's value its value.
const LabelPrefix = netlabel.DriverPrefix + "." + NetworkType + "."

// parseDriverConfig decodes config.Config.DriverCfg["bridge"] plus the
// LabelPrefix labels the controller put beside its GenericData. The
// defaults are what a container engine runs with (see CONTRACT.md):
// iptables and ip6tables on, forwarding on, no userland proxy. Upstream
// defaults all of them to false.
func parseDriverConfig(cfg map[string]any) (driverConfig, error) {
	dc := driverConfig{EnableIPForwarding: true, EnableIPTables: true, EnableIP6Tables: true}
	set := func(k string, v any) error {
		var dst any
		switch k {
		case "EnableIPForwarding":
			dst = &dc.EnableIPForwarding
		case "EnableIPTables":
			dst = &dc.EnableIPTables
		case "EnableIP6Tables":
			dst = &dc.EnableIP6Tables
		case "EnableUserlandProxy":
			dst = &dc.EnableUserlandProxy
		case "UserlandProxyPath":
			dst = &dc.UserlandProxyPath
		default:
			return types.BadRequestErrorf("parsing bridge driver options: unknown option %q", k)
		}
		return assign(dst, k, v)
	}
	// Daemon labels (config.OptionLabels) come first, so that explicit
	// driver options win over them.
	for k, v := range cfg {
		name, ok := strings.CutPrefix(k, LabelPrefix)
		if !ok {
			continue
		}
		if err := set(name, v); err != nil {
			return dc, types.BadRequestErrorf("bridge driver label %s: %w", k, err)
		}
	}
	switch g := cfg[netlabel.GenericData].(type) {
	case nil:
	case map[string]string:
		for k, v := range g {
			if err := set(k, v); err != nil {
				return dc, err
			}
		}
	case options.Generic:
		for k, v := range g {
			if err := set(k, v); err != nil {
				return dc, err
			}
		}
	case map[string]any:
		for k, v := range g {
			if err := set(k, v); err != nil {
				return dc, err
			}
		}
	default:
		return dc, types.BadRequestErrorf("parsing bridge driver options: unsupported type %T for %s", g, netlabel.GenericData)
	}
	return dc, nil
}
