// Package api holds the JSON messages of the IpamDriver plugin protocol,
// field for field as IPAM plugins written for Docker expect them. Pools and
// returned addresses travel in CIDR form, requested addresses as plain IPs.
package api

// Response is the part every reply shares: a non-empty Error is the plugin
// reporting failure in a 200 reply. (Network plugins call this field Err.)
type Response struct {
	Error string
}

// GetError returns the plugin's error message, if any.
func (r *Response) GetError() string { return r.Error }

// GetCapabilityResponse tells how the plugin wants to be driven.
type GetCapabilityResponse struct {
	Response
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

// GetAddressSpacesResponse names the plugin's default address spaces.
type GetAddressSpacesResponse struct {
	Response
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// RequestPoolRequest asks for a pool.
type RequestPoolRequest struct {
	AddressSpace string
	Pool         string // preferred pool, CIDR; empty lets the plugin choose
	SubPool      string // range within Pool to hand addresses from, CIDR
	Options      map[string]string
	V6           bool
}

// RequestPoolResponse is the pool granted. Data may carry
// "com.docker.network.gateway" with a gateway in CIDR form.
type RequestPoolResponse struct {
	Response
	PoolID string
	Pool   string // CIDR
	Data   map[string]string
}

// ReleasePoolRequest gives a pool back.
type ReleasePoolRequest struct {
	PoolID string
}

// ReleasePoolResponse is the reply to ReleasePool.
type ReleasePoolResponse struct{ Response }

// RequestAddressRequest asks for an address from a pool. Options may carry
// "RequestAddressType": "com.docker.network.gateway" for a gateway, and a MAC
// under "com.docker.network.endpoint.macaddress".
type RequestAddressRequest struct {
	PoolID  string
	Address string // preferred address, plain IP; empty lets the plugin choose
	Options map[string]string
}

// RequestAddressResponse is the address granted, in CIDR form.
type RequestAddressResponse struct {
	Response
	Address string
	Data    map[string]string
}

// ReleaseAddressRequest gives an address back.
type ReleaseAddressRequest struct {
	PoolID  string
	Address string // plain IP
}

// ReleaseAddressResponse is the reply to ReleaseAddress.
type ReleaseAddressResponse struct{ Response }
