package restoreplan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/types"
)

// The records the table does not cover: invalid IDs, endpoints without a
// network or a join, sandboxes asked for that have no record.
func TestPlanEdges(t *testing.T) {
	bad := "../" + strings.Repeat("x", 10)
	n := records.Network{ID: netID, Type: "bridge", State: records.Ready}

	t.Run("network with an invalid id is skipped, its endpoints dropped", func(t *testing.T) {
		bn := n
		bn.ID = bad
		ep := joinedEndpoint(records.Ready)
		ep.NetworkID = bad
		p := Make(input(bn, ep, true, true))
		if s := p.Networks[0]; s.Action != NetworkSkip || !types.IsBadRequest(s.Err) {
			t.Errorf("network step %v (%v), want NetworkSkip with a BadRequest", s.Action, s.Err)
		}
		if s := p.Endpoints[0]; s.Action != EndpointDrop {
			t.Errorf("endpoint step %v, want EndpointDrop", s.Action)
		}
	})
	t.Run("creating network with an invalid id is still abandoned", func(t *testing.T) {
		bn := n
		bn.ID, bn.State = bad, records.Creating
		if s := Make(input(bn, joinedEndpoint(records.Ready), true, true)).Networks[0]; s.Action != NetworkAbandon {
			t.Errorf("network step %v, want NetworkAbandon", s.Action)
		}
	})
	t.Run("endpoint with an invalid id is skipped", func(t *testing.T) {
		ep := joinedEndpoint(records.Ready)
		ep.ID = bad
		if s := Make(input(n, ep, true, true)).Endpoints[0]; s.Action != EndpointSkip || s.Err == nil {
			t.Errorf("endpoint step %v (%v), want EndpointSkip with an error", s.Action, s.Err)
		}
	})
	t.Run("sandbox to keep with an invalid id is removed, saying why", func(t *testing.T) {
		in := input(n, joinedEndpoint(records.Ready), true, true)
		in.Records.Sandboxes[0].ID = bad
		in.Kept = map[string]bool{bad: true}
		p := Make(in)
		if s := p.Sandboxes[0]; s.Action != SandboxRemove || s.Err == nil {
			t.Errorf("sandbox step %v (%v), want SandboxRemove with an error", s.Action, s.Err)
		}
		if s := p.Endpoints[0]; s.Action != EndpointDelete {
			t.Errorf("endpoint step %v, want EndpointDelete", s.Action)
		}
	})
	t.Run("endpoint of a network without a record is dropped", func(t *testing.T) {
		in := input(n, joinedEndpoint(records.Ready), true, true)
		in.Records.Networks = nil
		if s := Make(in).Endpoints[0]; s.Action != EndpointDrop {
			t.Errorf("endpoint step %v, want EndpointDrop", s.Action)
		}
	})
	t.Run("kept sandbox without a record: its endpoints are deleted", func(t *testing.T) {
		in := input(n, joinedEndpoint(records.Ready), true, true)
		in.Records.Sandboxes = nil
		if s := Make(in).Endpoints[0]; s.Action != EndpointDelete {
			t.Errorf("endpoint step %v, want EndpointDelete", s.Action)
		}
	})
	for _, kept := range []bool{true, false} {
		t.Run(fmt.Sprintf("ready endpoint never joined is kept unjoined/kept=%t", kept), func(t *testing.T) {
			ep := records.Endpoint{ID: epID, NetworkID: netID, State: records.Ready}
			if s := Make(input(n, ep, kept, true)).Endpoints[0]; s.Action != EndpointKeep || s.Joined || s.Settle {
				t.Errorf("endpoint step %+v, want EndpointKeep, not joined, not settled", s)
			}
		})
		t.Run(fmt.Sprintf("leaving endpoint without a join is settled/kept=%t", kept), func(t *testing.T) {
			ep := records.Endpoint{ID: epID, NetworkID: netID, State: records.Leaving, SandboxID: sbID}
			p := Make(input(n, ep, kept, true))
			if s := p.Endpoints[0]; s.Action != EndpointRollForward || s.Joined || !s.Settle {
				t.Errorf("endpoint step %+v, want EndpointRollForward, not joined, settled", s)
			}
			if p.Sandboxes[0].Leaving[epID] {
				t.Error("the sandbox is told to finish a leave of an endpoint it never had")
			}
		})
	}
}

// Networks are planned in the order their records were made, so a
// network's steps never depend on map order.
func TestPlanKeepsRecordOrder(t *testing.T) {
	var in Input
	for _, id := range []string{"3", "1", "2"} {
		in.Records.Networks = append(in.Records.Networks, records.Network{ID: strings.Repeat(id, 64), Type: "null", State: records.Ready})
	}
	p := Make(in)
	for i, s := range p.Networks {
		if s.Record.ID != in.Records.Networks[i].ID {
			t.Fatalf("step %d is network %s, want %s", i, s.Record.ID[:1], in.Records.Networks[i].ID[:1])
		}
	}
}
