package libnetwork

import (
	"maps"
	"net"

	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// NetworkOption configures a network at creation.
type NetworkOption func(n *Network)

// NetworkOptionGeneric merges generic into the options handed to the driver;
// netlabel.EnableIPv6 and netlabel.Internal in it set those flags.
func NetworkOptionGeneric(generic map[string]any) NetworkOption {
	return func(n *Network) {
		for k, v := range generic {
			n.generic[k] = v
		}
		if v, ok := generic[netlabel.EnableIPv6]; ok {
			b, isBool := v.(bool)
			if !isBool {
				n.setErr(types.BadRequestErrorf("option %s must be a bool, not %T", netlabel.EnableIPv6, v))
			}
			n.enableIPv6 = b
		}
		if v, ok := generic[netlabel.EnableIPv4]; ok {
			b, isBool := v.(bool)
			if !isBool {
				n.setErr(types.BadRequestErrorf("option %s must be a bool, not %T", netlabel.EnableIPv4, v))
			}
			n.disableIPv4 = !b
		}
		if v, ok := generic[netlabel.Internal]; ok {
			b, isBool := v.(bool)
			if !isBool {
				n.setErr(types.BadRequestErrorf("option %s must be a bool, not %T", netlabel.Internal, v))
			}
			n.internal = b
		}
	}
}

// NetworkOptionDriverOpts sets the driver's string options.
func NetworkOptionDriverOpts(opts map[string]string) NetworkOption {
	return func(n *Network) { n.generic[netlabel.GenericData] = maps.Clone(opts) }
}

// NetworkOptionEnableIPv6 gives the network IPv6.
func NetworkOptionEnableIPv6(enable bool) NetworkOption {
	return func(n *Network) { n.enableIPv6 = enable }
}

// NetworkOptionEnableIPv4 false makes an IPv6-only network (moby 28): no
// IPv4 pool, no IPv4 addresses. It needs IPv6 enabled.
func NetworkOptionEnableIPv4(enable bool) NetworkOption {
	return func(n *Network) { n.disableIPv4 = !enable }
}

// NetworkOptionInternalNetwork cuts the network off from the outside.
func NetworkOptionInternalNetwork() NetworkOption {
	return func(n *Network) { n.internal = true }
}

// NetworkOptionIpam chooses the IPAM driver, address space, pools and IPAM options.
func NetworkOptionIpam(ipamDriver, addrSpace string, ipV4, ipV6 []*IpamConf, opts map[string]string) NetworkOption {
	return func(n *Network) {
		if ipamDriver == "" {
			ipamDriver = ipamapi.DefaultIPAM
		}
		n.ipamType, n.addrSpace = ipamDriver, addrSpace
		n.ipamV4Config, n.ipamV6Config = copyConfs(ipV4), copyConfs(ipV6)
		n.ipamOptions = maps.Clone(opts)
	}
}

// NetworkOptionLabels sets the network's user labels.
func NetworkOptionLabels(labels map[string]string) NetworkOption {
	return func(n *Network) { n.labels = maps.Clone(labels) }
}

// NetworkOptionPersist false keeps the network out of the store (memory only).
func NetworkOptionPersist(persist bool) NetworkOption {
	return func(n *Network) { n.persist = persist }
}

func (n *Network) setErr(err error) {
	if n.optErr == nil {
		n.optErr = err
	}
}

// EndpointOption configures an endpoint at creation, or a join or leave.
type EndpointOption func(ep *Endpoint)

func (ep *Endpoint) apply(opts []EndpointOption) {
	for _, o := range opts {
		if o != nil {
			o(ep)
		}
	}
}

func (ep *Endpoint) setErr(err error) {
	if ep.optErr == nil {
		ep.optErr = err
	}
}

// EndpointOptionGeneric merges generic into the options handed to the driver;
// netlabel.MacAddress (a net.HardwareAddr) in it pins the MAC.
func EndpointOptionGeneric(generic map[string]any) EndpointOption {
	return func(ep *Endpoint) {
		for k, v := range generic {
			ep.generic[k] = v
		}
	}
}

// CreateOptionIpam asks for specific addresses and passes IPAM options.
// llIPs are link-local addresses (169.254.0.0/16, fe80::/10) the
// container's interface also gets at join, as /16 (IPv4) or /64 (IPv6);
// anything else is a BadRequest.
func CreateOptionIpam(ipV4, ipV6 net.IP, llIPs []net.IP, ipamOptions map[string]string) EndpointOption {
	return func(ep *Endpoint) {
		ep.prefIPv4, ep.prefIPv6 = types.GetIPCopy(ipV4), types.GetIPCopy(ipV6)
		ep.iface.llAddrs = nil
		for _, ip := range llIPs {
			if !ip.IsLinkLocalUnicast() {
				ep.setErr(types.BadRequestErrorf("invalid link-local address %s", ip))
				continue
			}
			ll := &net.IPNet{IP: types.GetIPCopy(ip), Mask: net.CIDRMask(64, 128)}
			if v4 := ip.To4(); v4 != nil {
				ll = &net.IPNet{IP: v4, Mask: net.CIDRMask(16, 32)}
			}
			ep.iface.llAddrs = append(ep.iface.llAddrs, ll)
		}
		ep.ipamOptions = maps.Clone(ipamOptions)
	}
}

// CreateOptionExposedPorts records the endpoint's exposed ports.
func CreateOptionExposedPorts(exposedPorts []types.TransportPort) EndpointOption {
	return func(ep *Endpoint) {
		ep.exposedPorts = append([]types.TransportPort(nil), exposedPorts...)
		ep.generic[netlabel.ExposedPorts] = append([]types.TransportPort(nil), exposedPorts...)
	}
}

// CreateOptionPortMapping records ports to publish for the endpoint.
func CreateOptionPortMapping(portBindings []types.PortBinding) EndpointOption {
	return func(ep *Endpoint) {
		pbs := make([]types.PortBinding, 0, len(portBindings))
		for _, pb := range portBindings {
			pbs = append(pbs, pb.GetCopy())
		}
		ep.portMapping = pbs
		ep.generic[netlabel.PortMap] = append([]types.PortBinding(nil), pbs...)
	}
}

// CreateOptionDNS records DNS servers for the endpoint.
func CreateOptionDNS(dns []string) EndpointOption {
	return func(ep *Endpoint) { ep.generic[netlabel.DNSServers] = append([]string(nil), dns...) }
}

// CreateOptionMyAlias adds a name the endpoint answers to on its network.
func CreateOptionMyAlias(alias string) EndpointOption {
	return func(ep *Endpoint) { ep.myAliases = append(ep.myAliases, alias) }
}

// CreateOptionDisableResolution gives sandboxes joined through this
// endpoint no embedded DNS resolver.
func CreateOptionDisableResolution() EndpointOption {
	return func(ep *Endpoint) { ep.disableResolution = true }
}

// CreateOptionAlias maps alias to name for the sandbox this option is
// passed to at Join (legacy links).
func CreateOptionAlias(name, alias string) EndpointOption {
	return func(ep *Endpoint) {
		if ep.joinAliases == nil {
			ep.joinAliases = map[string]string{}
		}
		ep.joinAliases[alias] = name
	}
}

// JoinOptionPriority orders the sandbox's endpoints: the highest priority
// endpoint with a gateway provides the default route.
func JoinOptionPriority(prio int) EndpointOption {
	return func(ep *Endpoint) { ep.joinPrio = prio }
}

// SandboxOption configures a sandbox.
type SandboxOption func(cfg *sandboxConfig)

type extraHost struct{ name, ip string }

type sandboxConfig struct {
	hostname, domainname      string
	hostsPath, originHosts    string
	resolvConfPath, originRes string
	dns, dnsSearch, dnsOpts   []string
	extraHosts                []extraHost
	useDefaultSandbox         bool
	useExternalKey            bool
	generic                   map[string]any
	exposedPorts              []types.TransportPort
	portBindings              []types.PortBinding
	optErr                    error
}

func (cfg *sandboxConfig) apply(opts []SandboxOption) {
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
}

// labels is what drivers see of the sandbox: OptionGeneric plus port maps.
func (cfg *sandboxConfig) labels() map[string]any {
	m := maps.Clone(cfg.generic)
	if m == nil {
		m = map[string]any{}
	}
	if cfg.exposedPorts != nil {
		m[netlabel.ExposedPorts] = append([]types.TransportPort(nil), cfg.exposedPorts...)
	}
	if cfg.portBindings != nil {
		pbs := make([]types.PortBinding, 0, len(cfg.portBindings))
		for _, pb := range cfg.portBindings {
			pbs = append(pbs, pb.GetCopy())
		}
		m[netlabel.PortMap] = pbs
	}
	return m
}

// OptionHostname sets the container's hostname (for its hosts file).
func OptionHostname(name string) SandboxOption { return func(c *sandboxConfig) { c.hostname = name } }

// OptionDomainname sets the container's domain name (for its hosts file).
func OptionDomainname(name string) SandboxOption {
	return func(c *sandboxConfig) { c.domainname = name }
}

// OptionHostsPath sets where the container's hosts file is written.
func OptionHostsPath(path string) SandboxOption { return func(c *sandboxConfig) { c.hostsPath = path } }

// OptionOriginHostsPath sets the hosts file copied for host-mode containers.
func OptionOriginHostsPath(path string) SandboxOption {
	return func(c *sandboxConfig) { c.originHosts = path }
}

// OptionResolvConfPath sets where the container's resolv.conf is written.
func OptionResolvConfPath(path string) SandboxOption {
	return func(c *sandboxConfig) { c.resolvConfPath = path }
}

// OptionOriginResolvConfPath sets the resolv.conf the container's is built from.
func OptionOriginResolvConfPath(path string) SandboxOption {
	return func(c *sandboxConfig) { c.originRes = path }
}

// OptionDNS adds a nameserver, replacing the host's.
func OptionDNS(dns string) SandboxOption {
	return func(c *sandboxConfig) { c.dns = append(c.dns, dns) }
}

// OptionDNSSearch adds a search domain, replacing the host's.
func OptionDNSSearch(search string) SandboxOption {
	return func(c *sandboxConfig) { c.dnsSearch = append(c.dnsSearch, search) }
}

// OptionDNSOptions adds a resolver option, replacing the host's.
func OptionDNSOptions(opt string) SandboxOption {
	return func(c *sandboxConfig) { c.dnsOpts = append(c.dnsOpts, opt) }
}

// OptionExtraHost adds a hosts file record.
func OptionExtraHost(name, ip string) SandboxOption {
	return func(c *sandboxConfig) { c.extraHosts = append(c.extraHosts, extraHost{name: name, ip: ip}) }
}

// OptionUseDefaultSandbox puts the sandbox in the host's namespace.
func OptionUseDefaultSandbox() SandboxOption {
	return func(c *sandboxConfig) { c.useDefaultSandbox = true }
}

// OptionUseExternalKey creates no namespace: the caller supplies one with SetKey.
func OptionUseExternalKey() SandboxOption { return func(c *sandboxConfig) { c.useExternalKey = true } }

// OptionGeneric sets the sandbox's labels, which drivers receive at join.
func OptionGeneric(generic map[string]any) SandboxOption {
	return func(c *sandboxConfig) {
		if c.generic == nil {
			c.generic = map[string]any{}
		}
		maps.Copy(c.generic, generic)
		if v, ok := generic[netlabel.PortMap]; ok {
			pbs, isPB := v.([]types.PortBinding)
			if !isPB {
				c.setErr(types.BadRequestErrorf("option %s must be []types.PortBinding, not %T", netlabel.PortMap, v))
			}
			c.portBindings = pbs
		}
		if v, ok := generic[netlabel.ExposedPorts]; ok {
			tps, isTP := v.([]types.TransportPort)
			if !isTP {
				c.setErr(types.BadRequestErrorf("option %s must be []types.TransportPort, not %T", netlabel.ExposedPorts, v))
			}
			c.exposedPorts = tps
		}
	}
}

// OptionExposedPorts sets the sandbox's exposed ports.
func OptionExposedPorts(exposedPorts []types.TransportPort) SandboxOption {
	return func(c *sandboxConfig) { c.exposedPorts = append([]types.TransportPort(nil), exposedPorts...) }
}

// OptionPortMapping sets the ports the sandbox publishes on the host.
func OptionPortMapping(portBindings []types.PortBinding) SandboxOption {
	return func(c *sandboxConfig) {
		c.portBindings = nil
		for _, pb := range portBindings {
			c.portBindings = append(c.portBindings, pb.GetCopy())
		}
	}
}

func (c *sandboxConfig) setErr(err error) {
	if c.optErr == nil {
		c.optErr = err
	}
}
