package globalstore

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Network is the cluster-wide record of a global network. It lives until
// the network is deleted, on no lease: a network outlives the host that
// made it.
type Network struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Driver string `json:"driver"`
	Host   string `json:"host"` // the host that created it
	// Claims are what the network holds besides its name (VNIs, pools,
	// gateway addresses); DeleteNetwork releases them.
	Claims []Claim `json:"claims,omitempty"`
	// Data is the controller's own description (IPAM, options, labels).
	Data json.RawMessage `json:"data,omitempty"`
	// Revision is the store revision of the record's one write, its
	// create (set by Networks; not stored): lower committed first.
	Revision int64 `json:"-"`
}

// Endpoint is the cluster-wide record of an endpoint of a global network,
// on its host's lease.
type Endpoint struct {
	ID        string         `json:"id"`
	NetworkID string         `json:"nid"`
	Name      string         `json:"name"`
	Host      string         `json:"host"`
	MAC       string         `json:"mac,omitempty"`
	Addrs     []netip.Prefix `json:"addrs,omitempty"`
	Aliases   []string       `json:"aliases,omitempty"`
	// Claims are what the endpoint holds besides its name (its addresses).
	Claims []Claim         `json:"claims,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Peer is where an endpoint is reachable: the record the overlay programs
// FDB and neighbour entries from. It is on its host's lease and exists only
// while its endpoint does.
type Peer struct {
	EndpointID string       `json:"eid"`
	NetworkID  string       `json:"nid"`
	Host       string       `json:"host"`
	VTEP       netip.Addr   `json:"vtep"`
	MAC        string       `json:"mac"`
	IPs        []netip.Addr `json:"ips,omitempty"`
}

// Host is the record of a live host, on its own lease.
type Host struct {
	ID      string     `json:"id"`
	Address netip.Addr `json:"address"` // the underlay (discovery) address
	Lease   LeaseID    `json:"lease"`
	Started time.Time  `json:"started"`
}

// ClaimKind says what a claim makes unique.
type ClaimKind string

const (
	ClaimNetworkName  ClaimKind = "netname" // cluster-wide
	ClaimVNI          ClaimKind = "vni"     // cluster-wide
	ClaimPool         ClaimKind = "pool"    // per address space
	ClaimEndpointName ClaimKind = "epname"  // per network
	ClaimAddress      ClaimKind = "addr"    // per network
)

// Claim is one unique thing; its key in the store holds the owner's ID.
type Claim struct {
	Kind  ClaimKind `json:"kind"`
	Scope string    `json:"scope,omitempty"` // network ID or address space
	Name  string    `json:"name"`
}

// NetworkName, VNI, Pool, EndpointName and Address build claims.
func NetworkName(name string) Claim { return Claim{Kind: ClaimNetworkName, Name: name} }
func VNI(vni uint32) Claim          { return Claim{Kind: ClaimVNI, Name: strconv.FormatUint(uint64(vni), 10)} }
func Pool(space string, p netip.Prefix) Claim {
	return Claim{Kind: ClaimPool, Scope: space, Name: p.Masked().String()}
}
func EndpointName(nid, name string) Claim {
	return Claim{Kind: ClaimEndpointName, Scope: nid, Name: name}
}
func Address(nid string, a netip.Addr) Claim {
	return Claim{Kind: ClaimAddress, Scope: nid, Name: a.Unmap().String()}
}

func (c Claim) String() string {
	switch c.Kind {
	case ClaimNetworkName:
		return fmt.Sprintf("network name %q", c.Name)
	case ClaimVNI:
		return "VNI " + c.Name
	case ClaimPool:
		return fmt.Sprintf("pool %s in address space %s", c.Name, c.Scope)
	case ClaimEndpointName:
		return fmt.Sprintf("endpoint name %q in network %s", c.Name, c.Scope)
	case ClaimAddress:
		return fmt.Sprintf("address %s in network %s", c.Name, c.Scope)
	}
	return fmt.Sprintf("%s %s/%s", c.Kind, c.Scope, c.Name)
}

// Key layout under the Store's prefix P (names are path-escaped, so a name
// with a slash cannot reach into another key's space):
//
//	P/hosts/<host>                     Host, on the host's lease
//	P/claims/netname/<name>            network ID
//	P/claims/vni/<vni>                 network ID
//	P/claims/pool/<space>/<cidr>       network ID
//	P/nets/<nid>/config                Network
//	P/nets/<nid>/ep/<eid>              Endpoint, on its host's lease
//	P/nets/<nid>/epname/<name>         endpoint ID, on the same lease
//	P/nets/<nid>/addr/<ip>             owner ID (an endpoint's: on its lease)
//	P/nets/<nid>/peer/<eid>            Peer, on its host's lease
//
// A network's endpoints all live under P/nets/<nid>/, so deleting the
// network is one prefix delete guarded by "P/nets/<nid>/ep/ is empty".
type keys struct{ p string }

func esc(s string) string { return url.PathEscape(s) }

func (k keys) host(id string) string { return k.p + "/hosts/" + esc(id) }
func (k keys) hosts() string         { return k.p + "/hosts/" }
func (k keys) nets() string          { return k.p + "/nets/" }
func (k keys) net(nid string) string { return k.p + "/nets/" + esc(nid) + "/" }
func (k keys) config(nid string) string {
	return k.net(nid) + "config"
}
func (k keys) eps(nid string) string       { return k.net(nid) + "ep/" }
func (k keys) ep(nid, eid string) string   { return k.eps(nid) + esc(eid) }
func (k keys) peers(nid string) string     { return k.net(nid) + "peer/" }
func (k keys) peer(nid, eid string) string { return k.peers(nid) + esc(eid) }

func (k keys) claim(c Claim) string {
	switch c.Kind {
	case ClaimEndpointName, ClaimAddress:
		return k.net(c.Scope) + string(c.Kind) + "/" + esc(c.Name)
	case ClaimPool:
		return k.p + "/claims/pool/" + esc(c.Scope) + "/" + esc(c.Name)
	}
	return k.p + "/claims/" + string(c.Kind) + "/" + esc(c.Name)
}
