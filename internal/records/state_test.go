package records

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// Records written before State had a name for ready hold "" (or, for a
// record built without one, nothing): they load as Ready.
func TestLoadReadsOldReadyRecords(t *testing.T) {
	st := store.NewMemory()
	old := map[string]string{
		KindNetwork:  `{"ID":"n1","Name":"net","Type":"bridge","State":"","Created":"2024-01-02T03:04:05Z"}`,
		KindEndpoint: `{"ID":"e1","Name":"ep","NetworkID":"n1","State":"","SandboxID":"s1","Join":{"DstName":"eth0"}}`,
	}
	for kind, raw := range old {
		put(t, st, kind, "x", raw)
	}
	put(t, st, KindEndpoint, "y", `{"ID":"e2","Name":"ep2","NetworkID":"n1"}`)
	set, err := Load(st)
	if err != nil || len(set.Undecodable) > 0 {
		t.Fatalf("Load: %v %v", err, set.Undecodable)
	}
	if len(set.Networks) != 1 || set.Networks[0].State != Ready {
		t.Fatalf("networks %+v, want one Ready", set.Networks)
	}
	if len(set.Endpoints) != 2 || set.Endpoints[0].State != Ready || set.Endpoints[1].State != Ready {
		t.Fatalf("endpoints %+v, want two Ready", set.Endpoints)
	}
	if !set.Endpoints[0].Joined() {
		t.Error("an old ready endpoint record with a join does not count as joined")
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range States {
		b, err := json.Marshal(Endpoint{State: s})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"State":"`+string(s)+`"`) {
			t.Errorf("state %s stored as %s", s, b)
		}
		var back Endpoint
		if err := json.Unmarshal(b, &back); err != nil || back.State != s {
			t.Errorf("state %s read back as %q (%v)", s, back.State, err)
		}
	}
}

// A state this version does not know makes the record undecodable: it is
// reported and left alone, never acted on with a guess.
func TestLoadRejectsUnknownState(t *testing.T) {
	st := store.NewMemory()
	put(t, st, KindEndpoint, "e1", `{"ID":"e1","State":"migrating"}`)
	set, err := Load(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Endpoints) != 0 || len(set.Undecodable) != 1 || !types.IsInternal(set.Undecodable[0]) {
		t.Fatalf("endpoints %+v, errors %v: want none and one Internal error", set.Endpoints, set.Undecodable)
	}
}

func put(t *testing.T, st store.Store, kind, id, raw string) {
	t.Helper()
	if err := st.Apply(store.Op{Kind: kind, ID: id, Value: []byte(raw)}); err != nil {
		t.Fatal(err)
	}
}
