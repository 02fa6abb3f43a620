package records

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// State says how far the operation that last wrote a record got. A record
// is written in an intent state before the kernel is changed where a crash
// half-way would otherwise leave the restore guessing, and in Ready after.
// Everything the kernel holds for a record is also tagged with its ID
// (bridge and veth aliases, rule comments), so what a crash leaves without
// a record is found and removed.
type State string

const (
	// Ready: the record is what the kernel and the driver hold.
	Ready State = "ready"
	// Creating (network): pools taken, the driver may have made its bridge.
	Creating State = "creating"
	// Joining (endpoint): the driver may have wired it into SandboxID.
	Joining State = "joining"
	// Leaving (endpoint): a Leave from SandboxID that moves the sandbox's
	// gateway to another endpoint began (the default route and published
	// ports may have moved already); the next start finishes it.
	Leaving State = "leaving"
)

// legacyReady is how Ready is stored in records written by versions that
// had no name for it; such records load as Ready.
const legacyReady = ""

// States lists every state, for tests that go over all of them.
var States = []State{Creating, Joining, Leaving, Ready}

// UnmarshalJSON reads a stored state, legacyReady as Ready; a state this
// version does not know is an error, so a record is never acted on with a
// guess.
func (s *State) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v == legacyReady {
		*s = Ready
		return nil
	}
	if !slices.Contains(States, State(v)) {
		return types.InternalErrorf("unknown record state %q", strings.ToValidUTF8(v, "?"))
	}
	*s = State(v)
	return nil
}

// orReady is s, with a record that holds no state at all read as Ready.
func (s State) orReady() State {
	if s == legacyReady {
		return Ready
	}
	return s
}
