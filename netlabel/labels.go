// Package netlabel names the well-known option and label keys, with the
// string values Docker and its plugins use.
package netlabel

import "strings"

const (
	// Prefix is the common prefix of every libnetwork label.
	Prefix = "com.docker.network"
	// DriverPrefix prefixes driver-specific labels.
	DriverPrefix = Prefix + ".driver"
	// DriverPrivatePrefix prefixes labels a driver keeps to itself.
	DriverPrivatePrefix = DriverPrefix + ".private"

	// GenericData is the key under which driver options are passed.
	GenericData = Prefix + ".generic"
	// Logger is the key under which the controller hands a built-in
	// driver its *slog.Logger, in the driver's configuration map.
	Logger = Prefix + ".logger"
	// PortMap is the key of an endpoint's or sandbox's []types.PortBinding.
	PortMap = Prefix + ".portmap"
	// OperPortMap is the key under which the controller, restoring a live
	// sandbox after a restart, passes its gateway endpoint's operational
	// []types.PortBinding (host ports as published before) to
	// ProgramExternalConnectivity: a driver that knows it publishes exactly
	// those, instead of the requested PortMap merged with the endpoint's
	// own, so every port, chosen ones included, comes back unchanged.
	OperPortMap = Prefix + ".portmap.operational"
	// MacAddress is the key of an endpoint's net.HardwareAddr.
	MacAddress = Prefix + ".endpoint.macaddress"
	// ExposedPorts is the key of an endpoint's or sandbox's []types.TransportPort.
	ExposedPorts = Prefix + ".endpoint.exposedports"
	// DNSServers is the key of an endpoint's DNS server list.
	DNSServers = Prefix + ".endpoint.dnsservers"
	// EnableIPv6 is the key of a network's IPv6 flag.
	EnableIPv6 = Prefix + ".enable_ipv6"
	// EnableIPv4 is the key of a network's IPv4 flag (moby 28); false
	// makes an IPv6-only network. Absent means true.
	EnableIPv4 = Prefix + ".enable_ipv4"
	// DriverMTU is the key of a network's MTU.
	DriverMTU = Prefix + ".driver.mtu"
	// Gateway is the IPAM pool metadata key of a gateway, and the request type of a gateway address.
	Gateway = Prefix + ".gateway"
	// Internal is the key of a network's internal flag.
	Internal = Prefix + ".internal"
	// ContainerIfacePrefix is the key of the in-sandbox interface name prefix.
	ContainerIfacePrefix = Prefix + ".container_iface_prefix"
	// HostIP is the source address used for SNAT instead of masquerade.
	HostIP = Prefix + ".host_ipv4"
	// BridgeGatewayModeIPv4 and BridgeGatewayModeIPv6 are the keys of a
	// bridge network's gateway mode per family ("nat", the default, or
	// "nat-unprotected"): whether hosts that route to the containers'
	// addresses are kept out.
	BridgeGatewayModeIPv4 = Prefix + ".bridge.gateway_mode_ipv4"
	BridgeGatewayModeIPv6 = Prefix + ".bridge.gateway_mode_ipv6"
	// BridgeTrustedHostInterfaces is the key of a bridge network's host
	// interfaces (colon-separated) from which its containers' addresses
	// may be reached directly.
	BridgeTrustedHostInterfaces = Prefix + ".bridge.trusted_host_interfaces"

	// LocalKVClient and GlobalKVClient name datastore client labels passed to drivers.
	LocalKVClient  = DriverPrivatePrefix + "localkv_client"
	GlobalKVClient = DriverPrivatePrefix + "globalkv_client"
)

// Key returns the part of label before the first '='.
func Key(label string) string { k, _, _ := strings.Cut(label, "="); return k }

// Value returns the part of label after the first '=' ("" if none).
func Value(label string) string { _, v, _ := strings.Cut(label, "="); return v }

// KeyValue splits label at the first '='.
func KeyValue(label string) (key, value string) { key, value, _ = strings.Cut(label, "="); return }
