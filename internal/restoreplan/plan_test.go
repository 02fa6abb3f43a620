package restoreplan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/internal/records"
)

var (
	netID = strings.Repeat("a", 64)
	epID  = strings.Repeat("b", 64)
	sbID  = strings.Repeat("c", 64)
)

const mac = "02:42:ac:11:00:02"

// joinedEndpoint is an endpoint record in state st, whose join (or the
// join under way) is into sandbox sbID.
func joinedEndpoint(st records.State) records.Endpoint {
	return records.Endpoint{ID: epID, Name: "ep", NetworkID: netID, State: st, MacAddress: mac,
		SandboxID: sbID, Join: &records.Join{DstName: "eth0"}}
}

func input(n records.Network, ep records.Endpoint, kept, driver bool) Input {
	return Input{
		Records: records.Set{Networks: []records.Network{n}, Endpoints: []records.Endpoint{ep},
			Sandboxes: []records.Sandbox{{ID: sbID, Key: "/ns/" + sbID[:12], Endpoints: []string{epID}}}},
		Kept:    map[string]bool{sbID: kept},
		Drivers: map[string]bool{"bridge": driver},
	}
}

// want is the plan for one cell of the table: one network, one endpoint
// in it joined (or joining) to one sandbox.
type want struct {
	net     NetworkAction
	ep      EndpointAction
	joined  bool // the endpoint is restored joined
	settle  bool // its record is written Ready after the sandboxes
	sb      SandboxAction
	halfMAC bool // the sandbox removes the interface of the endpoint's MAC
	leaving bool // the sandbox finishes the endpoint's leave
}

// TestPlanTable covers every record state × sandbox kept or not × driver
// present or not, for a network record in that state (its endpoint ready
// and joined) and for an endpoint record in that state (its network
// ready), asserting the step chosen for each of the three records.
func TestPlanTable(t *testing.T) {
	tests := []struct {
		record       string // which record is in state st: "network" or "endpoint"
		st           records.State
		kept, driver bool
		want         want
	}{
		{"network", records.Creating, true, true, want{net: NetworkAbandon, ep: EndpointDrop, sb: SandboxKeep}},
		{"network", records.Creating, true, false, want{net: NetworkDrop, ep: EndpointDrop, sb: SandboxKeep}},
		{"network", records.Creating, false, true, want{net: NetworkAbandon, ep: EndpointDrop, sb: SandboxRemove}},
		{"network", records.Creating, false, false, want{net: NetworkDrop, ep: EndpointDrop, sb: SandboxRemove}},
		{"network", records.Joining, true, true, want{net: NetworkKeep, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Joining, true, false, want{net: NetworkStandIn, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Joining, false, true, want{net: NetworkKeep, ep: EndpointDelete, sb: SandboxRemove}},
		{"network", records.Joining, false, false, want{net: NetworkStandIn, ep: EndpointDelete, sb: SandboxRemove}},
		{"network", records.Leaving, true, true, want{net: NetworkKeep, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Leaving, true, false, want{net: NetworkStandIn, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Leaving, false, true, want{net: NetworkKeep, ep: EndpointDelete, sb: SandboxRemove}},
		{"network", records.Leaving, false, false, want{net: NetworkStandIn, ep: EndpointDelete, sb: SandboxRemove}},
		{"network", records.Ready, true, true, want{net: NetworkKeep, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Ready, true, false, want{net: NetworkStandIn, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"network", records.Ready, false, true, want{net: NetworkKeep, ep: EndpointDelete, sb: SandboxRemove}},
		{"network", records.Ready, false, false, want{net: NetworkStandIn, ep: EndpointDelete, sb: SandboxRemove}},
		{"endpoint", records.Creating, true, true, want{net: NetworkKeep, ep: EndpointRollBack, settle: true, sb: SandboxKeep}},
		{"endpoint", records.Creating, true, false, want{net: NetworkStandIn, ep: EndpointRollBack, settle: true, sb: SandboxKeep}},
		{"endpoint", records.Creating, false, true, want{net: NetworkKeep, ep: EndpointRollBack, settle: true, sb: SandboxRemove}},
		{"endpoint", records.Creating, false, false, want{net: NetworkStandIn, ep: EndpointRollBack, settle: true, sb: SandboxRemove}},
		{"endpoint", records.Joining, true, true, want{net: NetworkKeep, ep: EndpointRollBack, settle: true, sb: SandboxKeep, halfMAC: true}},
		{"endpoint", records.Joining, true, false, want{net: NetworkStandIn, ep: EndpointRollBack, settle: true, sb: SandboxKeep, halfMAC: true}},
		{"endpoint", records.Joining, false, true, want{net: NetworkKeep, ep: EndpointRollBack, settle: true, sb: SandboxRemove}},
		{"endpoint", records.Joining, false, false, want{net: NetworkStandIn, ep: EndpointRollBack, settle: true, sb: SandboxRemove}},
		{"endpoint", records.Leaving, true, true, want{net: NetworkKeep, ep: EndpointRollForward, joined: true, sb: SandboxKeep, leaving: true}},
		{"endpoint", records.Leaving, true, false, want{net: NetworkStandIn, ep: EndpointRollForward, joined: true, sb: SandboxKeep, leaving: true}},
		{"endpoint", records.Leaving, false, true, want{net: NetworkKeep, ep: EndpointDelete, sb: SandboxRemove}},
		{"endpoint", records.Leaving, false, false, want{net: NetworkStandIn, ep: EndpointDelete, sb: SandboxRemove}},
		{"endpoint", records.Ready, true, true, want{net: NetworkKeep, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"endpoint", records.Ready, true, false, want{net: NetworkStandIn, ep: EndpointKeep, joined: true, sb: SandboxKeep}},
		{"endpoint", records.Ready, false, true, want{net: NetworkKeep, ep: EndpointDelete, sb: SandboxRemove}},
		{"endpoint", records.Ready, false, false, want{net: NetworkStandIn, ep: EndpointDelete, sb: SandboxRemove}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %s/kept=%t/driver=%t", tt.record, tt.st, tt.kept, tt.driver)
		seen[name] = true
		n := records.Network{ID: netID, Name: "n", Type: "bridge", State: records.Ready}
		ep := joinedEndpoint(records.Ready)
		if tt.record == "network" {
			n.State = tt.st
		} else {
			ep = joinedEndpoint(tt.st)
		}
		t.Run(name, func(t *testing.T) { check(t, Make(input(n, ep, tt.kept, tt.driver)), tt.want) })
	}
	if want := 2 * len(records.States) * 2 * 2; len(seen) != want {
		t.Fatalf("table has %d distinct cells, want %d", len(seen), want)
	}
}

func check(t *testing.T, p Plan, w want) {
	t.Helper()
	if len(p.Networks) != 1 || len(p.Endpoints) != 1 || len(p.Sandboxes) != 1 {
		t.Fatalf("plan has %d network, %d endpoint, %d sandbox steps, want one each", len(p.Networks), len(p.Endpoints), len(p.Sandboxes))
	}
	n, ep, sb := p.Networks[0], p.Endpoints[0], p.Sandboxes[0]
	got := want{net: n.Action, ep: ep.Action, joined: ep.Joined, settle: ep.Settle, sb: sb.Action,
		halfMAC: len(sb.HalfJoinMACs) == 1 && sb.HalfJoinMACs[0] == mac, leaving: sb.Leaving[epID]}
	if got != w {
		t.Errorf("plan %+v, want %+v", got, w)
	}
	if n.Err != nil || ep.Err != nil || sb.Err != nil {
		t.Errorf("steps carry errors: %v, %v, %v", n.Err, ep.Err, sb.Err)
	}
}
