package testrig

import (
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
)

// JoinNew creates endpoint name on nw and a sandbox with the same name
// carrying opts, and joins them: one container's worth of set-up, failing t
// on the first error.
func JoinNew(t testing.TB, c *libnetwork.Controller, nw *libnetwork.Network, name string, opts ...libnetwork.SandboxOption) (*libnetwork.Endpoint, *libnetwork.Sandbox) {
	t.Helper()
	ep, err := nw.CreateEndpoint(name)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.NewSandbox(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	return ep, sb
}

// TeardownTimes are the steps of TimedTeardown, each on its own.
type TeardownTimes struct {
	Leave, SandboxDelete, EndpointDelete time.Duration
}

// Total is the whole teardown.
func (d TeardownTimes) Total() time.Duration { return d.Leave + d.SandboxDelete + d.EndpointDelete }

// TimedTeardown takes a joined container down as Docker's orderly stop
// does (Leave, Sandbox.Delete, Endpoint.Delete) and times each step,
// failing t on the first error.
func TimedTeardown(t testing.TB, ep *libnetwork.Endpoint, sb *libnetwork.Sandbox) TeardownTimes {
	t.Helper()
	t0 := time.Now()
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	return TeardownTimes{Leave: t1.Sub(t0), SandboxDelete: t2.Sub(t1), EndpointDelete: t3.Sub(t2)}
}

// PercentileMs is the p-th quantile (0..1, nearest rank below) of ds in
// milliseconds, 0 for no samples.
func PercentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return float64(c[int(p*float64(len(c)-1))].Microseconds()) / 1000
}

// MedianMs is the upper median of ds in milliseconds (for an even count the
// larger of the middle two), 0 for no samples.
func MedianMs(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return float64(c[len(c)/2].Microseconds()) / 1000
}
