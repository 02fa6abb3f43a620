// Package restoreplan decides what a starting controller does with each
// record its store holds: which objects come back as recorded, which
// half-done operations are rolled back or forward, and what goes. It only
// decides: Plan reads no kernel and no store, so every decision is tested
// without root; the controller's apply carries the plan out.
package restoreplan

import (
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/types"
)

// Input is what the plan is made from.
type Input struct {
	Records records.Set
	// Kept names the sandboxes whose containers still run: their
	// namespaces are kept and they come back with their joins.
	Kept map[string]bool
	// Drivers names the network driver types that were found.
	Drivers map[string]bool
}

// Plan is one step per record, each list in the order apply takes it.
type Plan struct {
	Networks  []NetworkStep
	Endpoints []EndpointStep
	Sandboxes []SandboxStep
}

// NetworkAction is what becomes of a network record.
type NetworkAction int

const (
	// NetworkKeep: restored with its driver.
	NetworkKeep NetworkAction = iota + 1
	// NetworkStandIn: restored with a stand-in for its driver, which was
	// not found; the stand-in finds the driver once it is back.
	NetworkStandIn
	// NetworkAbandon: its create never finished; its driver removes what
	// it may have made untagged, the record goes (GC takes the rest).
	NetworkAbandon
	// NetworkDrop: as NetworkAbandon, with no driver to ask: only the
	// record goes.
	NetworkDrop
	// NetworkSkip: the record cannot be acted on (Err says why); it is
	// left in the store, and GC takes the kernel objects tagged with it.
	NetworkSkip
)

// NetworkStep is the plan for one network record.
type NetworkStep struct {
	Action NetworkAction
	Record records.Network
	Err    error // why the record is skipped
}

// EndpointAction is what becomes of an endpoint record.
type EndpointAction int

const (
	// EndpointKeep: restored as recorded.
	EndpointKeep EndpointAction = iota + 1
	// EndpointRollBack: a join was cut short: restored unjoined; its kept
	// sandbox removes the interface the driver may have made there.
	EndpointRollBack
	// EndpointRollForward: a leave was cut short: its kept sandbox
	// finishes it.
	EndpointRollForward
	// EndpointDelete: its container is gone (the sandbox is not kept):
	// restored unjoined, then deleted, addresses and driver state with it.
	EndpointDelete
	// EndpointDrop: its network does not come back: only the record goes.
	EndpointDrop
	// EndpointSkip: the record cannot be acted on (Err says why); it is
	// left in the store.
	EndpointSkip
	// EndpointWait: its network was to come back and failed to (see
	// NetworksFailed): the network record stays for the next start to
	// retry, and so does this one, untouched and with no error of its own.
	EndpointWait
)

// EndpointStep is the plan for one endpoint record.
type EndpointStep struct {
	Action EndpointAction
	Record records.Endpoint
	// Joined: restored joined to Record.SandboxID, which is kept.
	Joined bool
	// Settle: the record is written Ready once every sandbox is back (not
	// before: a second crash in between still finds the intent).
	Settle bool
	Err    error
}

// SandboxAction is what becomes of a sandbox record.
type SandboxAction int

const (
	// SandboxKeep: its namespace is re-opened and it comes back with its
	// joins, its data plane untouched.
	SandboxKeep SandboxAction = iota + 1
	// SandboxRemove: its namespace, files and record are removed.
	SandboxRemove
)

// SandboxStep is the plan for one sandbox record.
type SandboxStep struct {
	Action SandboxAction
	Record records.Sandbox
	// HalfJoinMACs are the MACs of endpoints whose join into this sandbox
	// was cut short: their interfaces are removed from it.
	HalfJoinMACs []string
	// Leaving names its endpoints whose leave was cut short.
	Leaving map[string]bool
	Err     error // why a sandbox to keep is removed
}

// Make plans the restore of in. Networks come first, in the order they
// were made; an endpoint's step depends on its network's and its
// sandbox's.
func Make(in Input) Plan {
	var p Plan
	restoredNets := map[string]bool{}
	for _, r := range in.Records.Networks {
		s := networkStep(r, in.Drivers[r.Type])
		restoredNets[r.ID] = s.Action == NetworkKeep || s.Action == NetworkStandIn
		p.Networks = append(p.Networks, s)
	}
	keptSandboxes := map[string]bool{}
	for _, r := range in.Records.Sandboxes {
		s := sandboxStep(r, in.Kept[r.ID])
		keptSandboxes[r.ID] = s.Action == SandboxKeep
		p.Sandboxes = append(p.Sandboxes, s)
	}
	for _, r := range in.Records.Endpoints {
		p.Endpoints = append(p.Endpoints, endpointStep(r, restoredNets[r.NetworkID], keptSandboxes[r.SandboxID]))
	}
	tellSandboxes(p.Sandboxes, p.Endpoints)
	return p
}

// NetworksFailed revises the endpoint steps once apply has found that the
// networks in failed, which the plan kept, did not come back. Their
// records stay in the store for the next start to retry, so their
// endpoints' records stay with them (EndpointWait): the next start then
// finds the network and its endpoints as they were, never a network
// whose endpoints were deleted. Sandbox steps are not revised.
func (p *Plan) NetworksFailed(failed map[string]bool) {
	for i := range p.Endpoints {
		s := &p.Endpoints[i]
		if failed[s.Record.NetworkID] && s.Action != EndpointSkip {
			*s = EndpointStep{Action: EndpointWait, Record: s.Record}
		}
	}
}

// tellSandboxes gives each kept sandbox's step the joins into it and the
// leaves from it that a crash cut short.
func tellSandboxes(sbs []SandboxStep, eps []EndpointStep) {
	halfJoins, leaving := map[string][]string{}, map[string]map[string]bool{}
	for _, s := range eps {
		r := s.Record
		if r.State == records.Joining && r.SandboxID != "" && r.MacAddress != "" {
			halfJoins[r.SandboxID] = append(halfJoins[r.SandboxID], r.MacAddress)
		}
		if s.Action == EndpointRollForward && s.Joined {
			if leaving[r.SandboxID] == nil {
				leaving[r.SandboxID] = map[string]bool{}
			}
			leaving[r.SandboxID][r.ID] = true
		}
	}
	for i := range sbs {
		if s := &sbs[i]; s.Action == SandboxKeep {
			s.HalfJoinMACs, s.Leaving = halfJoins[s.Record.ID], leaving[s.Record.ID]
		}
	}
}

func networkStep(r records.Network, driverFound bool) NetworkStep {
	s := NetworkStep{Record: r}
	switch {
	case r.State == records.Creating && driverFound:
		s.Action = NetworkAbandon
	case r.State == records.Creating:
		s.Action = NetworkDrop
	case names.ID(r.ID) != nil:
		s.Action, s.Err = NetworkSkip, types.Wrapf(names.ID(r.ID), "invalid network id")
	case driverFound:
		s.Action = NetworkKeep
	default:
		s.Action = NetworkStandIn
	}
	return s
}

func sandboxStep(r records.Sandbox, active bool) SandboxStep {
	s := SandboxStep{Record: r, Action: SandboxRemove}
	if !active {
		return s
	}
	if err := names.ID(r.ID); err != nil {
		s.Err = types.Wrapf(err, "invalid sandbox id")
		return s
	}
	s.Action = SandboxKeep
	return s
}

// endpointStep plans endpoint r, given whether its network is restored
// and whether its recorded sandbox is kept.
func endpointStep(r records.Endpoint, netRestored, sandboxKept bool) EndpointStep {
	s := EndpointStep{Record: r}
	if err := names.ID(r.ID); err != nil {
		s.Action, s.Err = EndpointSkip, types.Wrapf(err, "invalid endpoint id")
		return s
	}
	if !netRestored {
		s.Action = EndpointDrop
		return s
	}
	joined := r.Joined()
	switch {
	case joined && !sandboxKept:
		s.Action = EndpointDelete
	case r.State == records.Leaving && joined:
		s.Action, s.Joined = EndpointRollForward, true
	case r.State == records.Leaving:
		s.Action, s.Settle = EndpointRollForward, true
	case r.State == records.Ready:
		s.Action, s.Joined = EndpointKeep, joined
	default: // Joining, or Creating, which only a network is written in
		s.Action, s.Settle = EndpointRollBack, true
	}
	return s
}
