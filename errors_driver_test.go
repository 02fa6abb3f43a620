package libnetwork_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// A failure of a driver (or of the kernel) during a public call comes back
// of its class by direct assertion, as TestErrorContract's do, and still
// unwraps to the driver's error. The driver's error here is unclassed
// (the call's answer is then Internal) or classed (the class carries
// through); the public call wraps it on its way out, possibly with errors
// of its undo, and must class the result itself.
func TestErrorContractDriverFailures(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := testrig.WithFake(t, c)
	plain := errors.New("injected driver failure")
	refused := types.ForbiddenErrorf("injected refusal")
	seq := 0
	name := func(p string) string { seq++; return fmt.Sprintf("%s%d", p, seq) }
	network := func() *libnetwork.Network { return testrig.FakeNet(t, c, name("n")) }
	endpoint := func() *libnetwork.Endpoint {
		return testrig.Must[*libnetwork.Endpoint](t)(network().CreateEndpoint(name("ep")))
	}
	joined := func() (*libnetwork.Endpoint, *libnetwork.Sandbox) {
		ep := endpoint()
		sb := testrig.ExtSandbox(t, c, name("ctr"))
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		return ep, sb
	}
	// failing runs call with step failing with cause, then clears it.
	failing := func(step string, cause error, call func() error) error {
		f.Fail(step, cause)
		defer f.Fail(step, nil)
		return call()
	}

	var cases []testrig.ErrCase
	for i, cause := range []struct {
		name  string
		err   error
		class func(error) bool
	}{{"plain", plain, testrig.IsInternal}, {"forbidden", refused, testrig.IsForbidden}} {
		add := func(what, step string, call func() error) {
			cases = append(cases, testrig.ErrCase{what + " (" + cause.name + ")", failing(step, cause.err, call), cause.class, testrig.Is(cause.err)})
		}
		add("NewNetwork, driver CreateNetwork fails", drivertest.StepCreateNetwork, func() error {
			_, err := c.NewNetwork("fake", name("n"), "")
			return err
		})
		add("CreateEndpoint, driver fails", drivertest.StepCreateEndpoint, func() error {
			_, err := network().CreateEndpoint("ep")
			return err
		})
		add("Join, driver Join fails", drivertest.StepJoin, func() error {
			return endpoint().Join(testrig.ExtSandbox(t, c, name("ctr")))
		})
		add("Join, driver ProgramExternalConnectivity fails", drivertest.StepProgram, func() error {
			// The driver programs the sandbox's gateway endpoint: one
			// whose join gives a gateway.
			gw := fmt.Sprintf("10.93.%d.1", 5+i)
			n := testrig.FakeNet(t, c, name("n"), testrig.IPAMOpt(fmt.Sprintf("10.93.%d.0/24", 5+i), gw))
			ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
			f.Gateway = net.ParseIP(gw)
			defer func() { f.Gateway = nil }()
			return ep.Join(testrig.ExtSandbox(t, c, name("ctr")))
		})
		ep, sb := joined()
		add("Leave, driver Leave fails", drivertest.StepLeave, func() error { return ep.Leave(sb) })
		ep = endpoint()
		add("Endpoint.Delete, driver DeleteEndpoint fails", drivertest.StepDeleteEndpoint, func() error { return ep.Delete(false) })
		n := network()
		add("Network.Delete, driver DeleteNetwork fails", drivertest.StepDeleteNetwork, func() error { return n.Delete() })
		_, sb = joined()
		add("Sandbox.Delete, driver Leave fails", drivertest.StepLeave, sb.Delete)
	}

	sb := testrig.ExtSandbox(t, c, "setkey")
	missing := filepath.Join(t.TempDir(), "no-such-netns")
	cases = append(cases, testrig.ErrCase{"SetKey, the namespace is not there", sb.SetKey(missing), testrig.IsNotFound, testrig.Is(fs.ErrNotExist)})
	testrig.CheckErrCases(t, cases)
}

// repairingFake is the fake driver with rules of its own to repair,
// whose repair fails with err.
type repairingFake struct {
	*drivertest.Fake
	err error
}

func (r *repairingFake) RepairFirewall() (firewall.Repairs, error) { return firewall.Repairs{}, r.err }

// RepairFirewall's error joins what each driver and the DNS redirect
// check said: of its class by direct assertion, unwrapping to each.
func TestErrorContractRepairFirewall(t *testing.T) {
	c := testrig.NewUnitController(t)
	plain := errors.New("injected repair failure")
	refused := types.ForbiddenErrorf("injected refusal")
	for _, d := range []*repairingFake{{drivertest.NewFake("fw1"), plain}, {drivertest.NewFake("fw2"), refused}} {
		if err := c.RegisterDriver(d.Name, d, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.RepairFirewall()
	testrig.CheckErrCases(t, []testrig.ErrCase{
		{"RepairFirewall, two drivers fail", err, testrig.IsForbidden, func(err error) bool { return errors.Is(err, plain) && errors.Is(err, refused) }},
	})
}
