// Package remote is the IPAM driver that forwards every call to a Docker v1
// IPAM plugin (a process serving the IpamDriver interface over HTTP, found
// with package plugins), checking what the plugin answers.
package remote

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/opencnm/libnetwork/ipam/remote/api"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/types"
)

// Allocator proxies ipamapi calls to one IPAM plugin. It keeps no state but
// the capabilities read at New, so it is safe for concurrent use as long as
// the plugin is.
type Allocator struct {
	client *plugins.Client
	caps   ipamapi.Capability
}

var _ ipamapi.Ipam = (*Allocator)(nil)

// New returns an IPAM driver for the activated plugin behind client. It
// asks for the plugin's capabilities; plugins that predate that call (or
// refuse it) are driven with none, as Docker does. A plugin that does not
// answer at all fails New: going on would only wait out the timeout again
// on the next call.
func New(client *plugins.Client) (ipamapi.Ipam, error) {
	a := &Allocator{client: client}
	var resp api.GetCapabilityResponse
	err := a.call("GetCapabilities", nil, &resp)
	var pe *plugins.PluginError
	switch {
	case err == nil:
		a.caps = ipamapi.Capability{
			RequiresMACAddress:    resp.RequiresMACAddress,
			RequiresRequestReplay: resp.RequiresRequestReplay,
		}
	case types.IsNotImplemented(err) || errors.As(err, &pe):
		// The plugin answered: it has no capabilities to report.
	default:
		return nil, types.Wrapf(err, "get capabilities of IPAM plugin %q", client.Name())
	}
	return a, nil
}

// response is what every reply type has: the plugin's own error field.
type response interface{ GetError() string }

// call sends IpamDriver.<method> and turns a reply's Error field into an
// error reading "remote: <msg>".
func (a *Allocator) call(method string, req any, resp response) error {
	m := ipamapi.PluginEndpointType + "." + method
	if err := a.client.Call(m, req, resp); err != nil {
		return err
	}
	return a.client.ReportedError(m, resp.GetError())
}

// Capabilities returns what the plugin said at New.
func (a *Allocator) Capabilities() ipamapi.Capability { return a.caps }

// GetDefaultAddressSpaces asks the plugin for its local and global default
// address space names.
func (a *Allocator) GetDefaultAddressSpaces() (string, string, error) {
	var resp api.GetAddressSpacesResponse
	if err := a.call("GetDefaultAddressSpaces", nil, &resp); err != nil {
		return "", "", err
	}
	return resp.LocalDefaultAddressSpace, resp.GlobalDefaultAddressSpace, nil
}

// RequestPool asks the plugin for a pool. req.Exclude is not part of the
// plugin protocol and is not sent: a plugin chooses pools by its own rules.
// A reply without a pool ID or with a pool that is not a prefix of the
// requested family is an error, and a pool ID it did give is released.
func (a *Allocator) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	var resp api.RequestPoolResponse
	err := a.call("RequestPool", &api.RequestPoolRequest{
		AddressSpace: req.AddressSpace,
		Pool:         req.Pool,
		SubPool:      req.SubPool,
		Options:      req.Options,
		V6:           req.V6,
	}, &resp)
	if err != nil {
		return ipamapi.AllocatedPool{}, err
	}
	if resp.PoolID == "" {
		return ipamapi.AllocatedPool{}, badReply("RequestPool", "no PoolID")
	}
	pool, err := netip.ParsePrefix(resp.Pool)
	if err == nil && pool.Addr().Is4() == req.V6 {
		err = fmt.Errorf("wrong address family (v6 requested: %t)", req.V6)
	}
	if err != nil {
		berr := badReply("RequestPool", "Pool %q: %v", resp.Pool, err)
		if rerr := a.ReleasePool(resp.PoolID); rerr != nil {
			return ipamapi.AllocatedPool{}, fmt.Errorf("%w (rolling back: %v)", berr, rerr)
		}
		return ipamapi.AllocatedPool{}, berr
	}
	return ipamapi.AllocatedPool{PoolID: resp.PoolID, Pool: pool.Masked(), Meta: resp.Data}, nil
}

// ReleasePool gives the pool back to the plugin.
func (a *Allocator) ReleasePool(poolID string) error {
	return a.call("ReleasePool", &api.ReleasePoolRequest{PoolID: poolID}, &api.ReleasePoolResponse{})
}

// RequestAddress asks the plugin for an address in the pool, prefer if
// valid. The plugin answers in CIDR form; an empty answer is
// ipamapi.ErrNoIPReturned.
func (a *Allocator) RequestAddress(poolID string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	req := &api.RequestAddressRequest{PoolID: poolID, Options: opts}
	if prefer.IsValid() {
		req.Address = prefer.String()
	}
	var resp api.RequestAddressResponse
	if err := a.call("RequestAddress", req, &resp); err != nil {
		return netip.Prefix{}, nil, err
	}
	if resp.Address == "" {
		return netip.Prefix{}, nil, fmt.Errorf("request address from pool %s of plugin %q: %w", poolID, a.client.Name(), ipamapi.ErrNoIPReturned)
	}
	addr, err := netip.ParsePrefix(resp.Address)
	if err != nil {
		// Without a parsable address there is nothing to hand back.
		return netip.Prefix{}, nil, badReply("RequestAddress", "Address %q: %v", resp.Address, err)
	}
	return addr, resp.Data, nil
}

// ReleaseAddress gives the address back to the plugin.
func (a *Allocator) ReleaseAddress(poolID string, addr netip.Addr) error {
	if !addr.IsValid() {
		return types.BadRequestErrorf("release address from pool %s: invalid address", poolID)
	}
	return a.call("ReleaseAddress", &api.ReleaseAddressRequest{PoolID: poolID, Address: addr.String()}, &api.ReleaseAddressResponse{})
}

// badReply is the error for a reply that cannot be used: the plugin is at
// fault, so the class is Internal.
func badReply(method, format string, a ...any) error {
	return types.InternalErrorf("remote: invalid reply to %s: %s", method, fmt.Sprintf(format, a...))
}
