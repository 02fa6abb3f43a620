package bench

import (
	"fmt"
	"testing"

	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// BenchmarkSandboxDeleteJoined times Sandbox.Delete of a sandbox with its
// own namespace and one joined bridge endpoint (the container's interface
// is cut off, the endpoint left and deleted, the namespace unmounted);
// creating and joining is not timed. Run:
// go test -run '^$' -bench SandboxDeleteJoined -benchtime 200x .
func BenchmarkSandboxDeleteJoined(b *testing.B) {
	testutil.RequireRoot(b)
	c, nw, done := benchBridge(b, "10.201.0.0/16")
	defer done()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, sb := testrig.JoinNew(b, c, nw, fmt.Sprintf("c%d", i))
		b.StartTimer()
		if err := sb.Delete(); err != nil {
			b.Fatal(err)
		}
	}
}
