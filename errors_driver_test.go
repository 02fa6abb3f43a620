package libnetwork_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

func isInternal(err error) bool { _, ok := err.(types.InternalError); return ok }

// A failure of a driver (or of the kernel) during a public call comes back
// of its class by direct assertion, as TestErrorContract's do, and still
// unwraps to the driver's error. The driver's error here is unclassed
// (the call's answer is then Internal) or classed (the class carries
// through); the public call wraps it on its way out, possibly with errors
// of its undo, and must class the result itself.
func TestErrorContractDriverFailures(t *testing.T) {
	c := testrig.NewController(t)
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

	var cases []errCase
	for i, cause := range []struct {
		name  string
		err   error
		class func(error) bool
	}{{"plain", plain, isInternal}, {"forbidden", refused, isForbidden}} {
		add := func(what, step string, call func() error) {
			cases = append(cases, errCase{what + " (" + cause.name + ")", failing(step, cause.err, call), cause.class, is(cause.err)})
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
			n := testrig.FakeNet(t, c, name("n"), testrig.IpamOpt(fmt.Sprintf("10.93.%d.0/24", 5+i), gw))
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
	cases = append(cases, errCase{"SetKey, the namespace is not there", sb.SetKey(missing), isNotFound, is(fs.ErrNotExist)})
	checkErrCases(t, cases)
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
	c := testrig.NewController(t)
	plain := errors.New("injected repair failure")
	refused := types.ForbiddenErrorf("injected refusal")
	for _, d := range []*repairingFake{{drivertest.NewFake("fw1"), plain}, {drivertest.NewFake("fw2"), refused}} {
		if err := c.RegisterDriver(d.Name, d, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.RepairFirewall()
	checkErrCases(t, []errCase{
		{"RepairFirewall, two drivers fail", err, isForbidden, func(err error) bool { return errors.Is(err, plain) && errors.Is(err, refused) }},
	})
}

// The same through a network plugin: what the plugin answers as an error
// (Err in its reply) comes back Internal by direct assertion, with the
// plugin's message.
func TestErrorContractPluginFailures(t *testing.T) {
	s := testrig.NewVethSetup(t)
	const msg = "injected plugin failure"
	failing := func(method string, call func() error) error {
		s.P.SetBefore(func(m string) error {
			if m == method {
				return errors.New(msg)
			}
			return nil
		})
		defer s.P.SetBefore(nil)
		return call()
	}
	says := func(err error) bool { return strings.Contains(err.Error(), msg) }
	spare := testrig.Must[*libnetwork.Network](t)(s.C.NewNetwork("vethnet", "spare", "", testrig.IpamConf("10.78.0.0/24", "10.78.0.1")))
	cases := []errCase{
		{"NewNetwork, plugin CreateNetwork fails", failing("CreateNetwork", func() error {
			_, err := s.C.NewNetwork("vethnet", "refused", "", testrig.IpamConf("10.79.0.0/24", "10.79.0.1"))
			return err
		}), isInternal, says},
		{"CreateEndpoint, plugin fails", failing("CreateEndpoint", func() error {
			_, err := s.N.CreateEndpoint("ep2")
			return err
		}), isInternal, says},
		{"Join, plugin fails", failing("Join", func() error { return s.Ep.Join(s.Sb) }), isInternal, says},
	}
	if err := s.Ep.Join(s.Sb); err != nil {
		t.Fatal(err)
	}
	cases = append(cases,
		errCase{"Leave, plugin fails", failing("Leave", func() error { return s.Ep.Leave(s.Sb) }), isInternal, says})
	if s.Ep.Info().Sandbox() != nil {
		if err := s.Ep.Leave(s.Sb); err != nil {
			t.Fatal(err)
		}
	}
	cases = append(cases,
		errCase{"Endpoint.Delete, plugin DeleteEndpoint fails", failing("DeleteEndpoint", func() error { return s.Ep.Delete(false) }), isInternal, says},
		errCase{"Network.Delete, plugin DeleteNetwork fails", failing("DeleteNetwork", func() error { return spare.Delete() }), isInternal, says})
	checkErrCases(t, cases)
}
