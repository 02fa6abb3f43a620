package remote

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// The same through a network plugin: what the plugin answers as an error
// (Err in its reply) comes back Internal by direct assertion, with the
// plugin's message.
func TestErrorContractPluginFailures(t *testing.T) {
	t.Parallel()
	s := testrig.NewVethSetup(t)
	const msg = "injected plugin failure"
	failing := func(method string, call func() error) error {
		s.Plugin.SetBefore(func(m string) error {
			if m == method {
				return errors.New(msg)
			}
			return nil
		})
		defer s.Plugin.SetBefore(nil)
		return call()
	}
	says := func(err error) bool { return strings.Contains(err.Error(), msg) }
	spare := testrig.Must[*libnetwork.Network](t)(s.Ctrl.NewNetwork("vethnet", "spare", "", testrig.IPAMOpt("10.78.0.0/24", "10.78.0.1")))
	cases := []testrig.ErrCase{
		{"NewNetwork, plugin CreateNetwork fails", failing("CreateNetwork", func() error {
			_, err := s.Ctrl.NewNetwork("vethnet", "refused", "", testrig.IPAMOpt("10.79.0.0/24", "10.79.0.1"))
			return err
		}), testrig.IsInternal, says},
		{"CreateEndpoint, plugin fails", failing("CreateEndpoint", func() error {
			_, err := s.Net.CreateEndpoint("ep2")
			return err
		}), testrig.IsInternal, says},
		{"Join, plugin fails", failing("Join", func() error { return s.Endpoint.Join(s.Sandbox) }), testrig.IsInternal, says},
	}
	if err := s.Endpoint.Join(s.Sandbox); err != nil {
		t.Fatal(err)
	}
	cases = append(cases,
		testrig.ErrCase{"Leave, plugin fails", failing("Leave", func() error { return s.Endpoint.Leave(s.Sandbox) }), testrig.IsInternal, says})
	if s.Endpoint.Info().Sandbox() != nil {
		if err := s.Endpoint.Leave(s.Sandbox); err != nil {
			t.Fatal(err)
		}
	}
	cases = append(cases,
		testrig.ErrCase{"Endpoint.Delete, plugin DeleteEndpoint fails", failing("DeleteEndpoint", func() error { return s.Endpoint.Delete(false) }), testrig.IsInternal, says},
		testrig.ErrCase{"Network.Delete, plugin DeleteNetwork fails", failing("DeleteNetwork", func() error { return spare.Delete() }), testrig.IsInternal, says})
	testrig.CheckErrCases(t, cases)
}
