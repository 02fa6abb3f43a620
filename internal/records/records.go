// Package records is the stored form of the controller's networks,
// endpoints and sandboxes: one JSON record per object in the store, under
// its kind. The controller writes and restores them; tests that inspect a
// stopped controller's store read them through the same types.
package records

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// Record kinds in the store.
const (
	KindNetwork  = "network"
	KindEndpoint = "endpoint"
	KindSandbox  = "sandbox"
)

// IpamInfo is a network's pool as IPAM handed it out.
type IpamInfo struct {
	PoolID       string
	Meta         map[string]string
	AddressSpace string
	Pool         string
	Gateway      string
	GwFromIPAM   bool
	Aux          map[string]string
	AuxFromIPAM  map[string]bool
}

// IpamConf is a network's IPAM configuration as the caller gave it; its
// JSON is that of libnetwork.IpamConf.
type IpamConf struct {
	PreferredPool string
	SubPool       string
	Gateway       string
	AuxAddresses  map[string]string
}

// Network is a network's record.
type Network struct {
	ID, Name, Type string
	State          State
	Created        time.Time
	Scope          string
	IpamType       string
	AddrSpace      string
	IpamOptions    map[string]string
	IpamV4Config   []*IpamConf
	IpamV6Config   []*IpamConf
	IpamV4Info     []IpamInfo
	IpamV6Info     []IpamInfo
	Generic        map[string]TypedValue
	EnableIPv6     bool
	NoIPv4         bool `json:",omitempty"`
	Internal       bool
	Labels         map[string]string
	// ClusterIDs are the cluster-wide numbers of a global network (its
	// driver's ClusterIDRequester), claimed in the global store.
	ClusterIDs []uint32 `json:",omitempty"`
}

// Route is a static route a driver asked for at a join.
type Route struct {
	Destination string
	RouteType   int
	NextHop     string
}

// Join is what a driver's Join answered, kept so a restored sandbox's
// join is told to the driver again as it was.
type Join struct {
	Gw, Gw6   string
	Routes    []Route
	NoGwSvc   bool
	SrcName   string
	DstPrefix string
	DstName   string
}

// Endpoint is an endpoint's record, its join included.
type Endpoint struct {
	ID, Name, NetworkID string
	State               State
	MacAddress          string
	Address, AddressV6  string
	LinkLocal           []string `json:",omitempty"`
	V4PoolID, V6PoolID  string
	Generic             map[string]TypedValue
	ExposedPorts        []types.TransportPort
	PortMapping         []types.PortBinding
	MyAliases           []string
	DisableResolution   bool
	SandboxID           string
	Join                *Join
	OperPorts           []types.PortBinding // host ports actually published, kept across restarts
}

// Joined reports whether the record holds a join that went through the
// driver (a join still under way is not one).
func (r *Endpoint) Joined() bool {
	return (r.State == Ready || r.State == Leaving) && r.SandboxID != "" && r.Join != nil
}

// Sandbox is a sandbox's record.
type Sandbox struct {
	ID, ContainerID, Key string
	Endpoints            []string // joined endpoint IDs, in order
	Priorities           map[string]int
	ExternalKey          bool
	DefaultSandbox       bool
	KeySet               bool // an external key was set
}

// Decode reads one record of kind into r, naming the record in its error.
func Decode(kind, id string, raw []byte, r any) error {
	if err := json.Unmarshal(raw, r); err != nil {
		return types.InternalErrorf("decoding %s record %s: %w", kind, id, err)
	}
	return nil
}

// Encode is the stored form of record r.
func Encode(kind, id string, r any) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, types.InternalErrorf("encoding %s record %s: %w", kind, id, err)
	}
	return b, nil
}

// Lister is the part of a store records are read from.
type Lister interface {
	List(kind string) (map[string][]byte, error)
}

// Set is every record of a store, networks in the order they were made.
type Set struct {
	Networks  []Network
	Endpoints []Endpoint
	Sandboxes []Sandbox
	// Undecodable holds one error per record that could not be read; the
	// record is left in the store untouched.
	Undecodable []error
}

// Load reads every record of st.
func Load(st Lister) (Set, error) {
	var s Set
	var err error
	if s.Networks, err = loadKind[Network](st, KindNetwork, &s.Undecodable); err != nil {
		return s, err
	}
	for i := range s.Networks {
		s.Networks[i].State = s.Networks[i].State.orReady()
	}
	slices.SortFunc(s.Networks, func(a, b Network) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if s.Endpoints, err = loadKind[Endpoint](st, KindEndpoint, &s.Undecodable); err != nil {
		return s, err
	}
	for i := range s.Endpoints {
		s.Endpoints[i].State = s.Endpoints[i].State.orReady()
	}
	slices.SortFunc(s.Endpoints, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	s.Sandboxes, err = loadKind[Sandbox](st, KindSandbox, &s.Undecodable)
	slices.SortFunc(s.Sandboxes, func(a, b Sandbox) int { return strings.Compare(a.ID, b.ID) })
	return s, err
}

func loadKind[R any](st Lister, kind string, bad *[]error) ([]R, error) {
	all, err := st.List(kind)
	if err != nil {
		return nil, fmt.Errorf("listing %s records: %w", kind, err)
	}
	out := make([]R, 0, len(all))
	for id, raw := range all {
		var r R
		if err := Decode(kind, id, raw, &r); err != nil {
			*bad = append(*bad, err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
