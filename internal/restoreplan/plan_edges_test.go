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

// A network the plan kept that apply could not bring back stays recorded
// for the next start, and so do its endpoints' records, whatever their
// state: no step deletes them. Other networks' endpoints are not revised,
// nor are records already skipped.
func TestPlanNetworksFailed(t *testing.T) {
	other := strings.Repeat("d", 64)
	for _, st := range records.States {
		for _, kept := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/kept=%t", st, kept), func(t *testing.T) {
				n := records.Network{ID: netID, Name: "n", Type: "bridge", State: records.Ready}
				in := input(n, joinedEndpoint(st), kept, true)
				in.Records.Networks = append(in.Records.Networks, records.Network{ID: other, Name: "o", Type: "bridge", State: records.Ready})
				oep := records.Endpoint{ID: strings.Repeat("e", 64), Name: "o", NetworkID: other, State: records.Ready}
				bad := records.Endpoint{ID: "not an id", Name: "bad", NetworkID: netID, State: records.Ready}
				in.Records.Endpoints = append(in.Records.Endpoints, oep, bad)
				p := Make(in)
				before := p.Endpoints[1]
				p.NetworksFailed(map[string]bool{netID: true})
				if s := p.Endpoints[0]; s.Action != EndpointWait || s.Record.ID != epID || s.Err != nil || s.Joined || s.Settle {
					t.Errorf("endpoint of the failed network: step %+v, want EndpointWait with its record and nothing else", s)
				}
				if s := p.Endpoints[1]; s.Action != before.Action || s.Joined != before.Joined || s.Settle != before.Settle {
					t.Errorf("endpoint of another network revised from %+v to %+v", before, s)
				}
				if s := p.Endpoints[2]; s.Action != EndpointSkip || s.Err == nil {
					t.Errorf("invalid endpoint record: step %+v, want EndpointSkip with its error", s)
				}
			})
		}
	}
}
