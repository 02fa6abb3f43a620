package libnetwork_test

import (
	"errors"
	"net"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

// The class checks are direct type assertions, as callers written for
// upstream make them; errors.As would also find a class buried in a chain.
func isNotFound(err error) bool   { _, ok := err.(types.NotFoundError); return ok }
func isBadRequest(err error) bool { _, ok := err.(types.BadRequestError); return ok }
func isForbidden(err error) bool  { _, ok := err.(types.ForbiddenError); return ok }

// named reports whether err is itself of type T (direct assertion) and
// errors.As finds T in it too.
func named[T error](err error) bool {
	_, direct := err.(T)
	var as T
	return direct && errors.As(err, &as)
}

// errCase is one entry of the contract's error list: the error a public
// call returned, the class it must have by direct assertion, and the cause
// (a named type or a sentinel) it must still unwrap to.
type errCase struct {
	name  string
	err   error
	class func(error) bool
	cause func(error) bool
}

func checkErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		switch {
		case tc.err == nil:
			t.Errorf("%s: no error", tc.name)
		case !tc.class(tc.err):
			t.Errorf("%s: %T %q is not of its class by direct type assertion", tc.name, tc.err, tc.err)
		case tc.cause != nil && !tc.cause(tc.err):
			t.Errorf("%s: %T %q does not unwrap to its cause", tc.name, tc.err, tc.err)
		}
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

// Every error of the contract's minimum mapping, and every named error type,
// returned by the public API: of its class by direct assertion and still
// unwrapping to its cause.
func TestErrorContract(t *testing.T) {
	c := testrig.NewController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IpamOpt("10.93.0.0/24", "10.93.0.254"))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep", libnetwork.CreateOptionIpam(net.ParseIP("10.93.0.7"), nil, nil, nil)))
	sb := testrig.ExtSandbox(t, c, "ctr")
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	sb2 := testrig.ExtSandbox(t, c, "ctr2")
	one := func(_ any, err error) error { return err }
	badMAC := libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: "nonsense"})

	checkErrCases(t, []errCase{
		{"unknown network by name", one(c.NetworkByName("nope")), isNotFound, named[libnetwork.ErrNoSuchNetwork]},
		{"unknown network by id", one(c.NetworkByID("nope")), isNotFound, named[libnetwork.ErrNoSuchNetwork]},
		{"unknown endpoint by name", one(n.EndpointByName("nope")), isNotFound, named[libnetwork.ErrNoSuchEndpoint]},
		{"unknown endpoint by id", one(n.EndpointByID("nope")), isNotFound, named[libnetwork.ErrNoSuchEndpoint]},
		{"unknown sandbox", one(c.SandboxByID("nope")), isNotFound, named[libnetwork.ErrNoSuchSandbox]},
		{"unknown driver", one(c.NewNetwork("no-such-driver", "x", "")), isNotFound, named[libnetwork.NetworkTypeError]},
		{"empty network name", one(c.NewNetwork("fake", "", "")), isBadRequest, named[libnetwork.ErrInvalidName]},
		{"blank network name", one(c.NewNetwork("fake", "  ", "")), isBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty name lookup", one(c.NetworkByName("")), isBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty id lookup", one(c.NetworkByID("")), isBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty endpoint name", one(n.CreateEndpoint("")), isBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty endpoint id lookup", one(n.EndpointByID("")), isBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty sandbox id lookup", one(c.SandboxByID("")), isBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty container id", one(c.NewSandbox("")), isBadRequest, named[libnetwork.InvalidContainerIDError]},
		{"empty sandbox name", sb2.Rename(""), isBadRequest, named[libnetwork.ErrInvalidName]},
		{"bad CIDR", one(c.NewNetwork("fake", "badcidr", "", testrig.IpamOpt("10.93.1.0/33", ""))), isBadRequest, is(ipamapi.ErrInvalidPool)},
		{"gateway outside subnet", one(c.NewNetwork("fake", "badgw", "", testrig.IpamOpt("10.93.2.0/24", "10.94.0.1"))), isBadRequest, is(ipamapi.ErrIPOutOfRange)},
		{"bad MAC", one(n.CreateEndpoint("badmac", badMAC)), isBadRequest, nil},
		{"bad option type", one(c.NewNetwork("fake", "badopt", "",
			libnetwork.NetworkOptionGeneric(map[string]any{netlabel.EnableIPv6: "yes"}))), isBadRequest, nil},
		{"bad sandbox option type", one(c.NewSandbox("badopt",
			libnetwork.OptionGeneric(map[string]any{netlabel.PortMap: "80:80"}))), isBadRequest, nil},
		{"bad protocol", (&types.TransportPort{}).FromString("80/nope"), isBadRequest, nil},
		{"duplicate network name", one(c.NewNetwork("fake", "n", "")), isForbidden, named[libnetwork.NetworkNameError]},
		{"duplicate network id", one(c.NewNetwork("fake", "n2", n.ID())), isForbidden, named[libnetwork.NetworkNameError]},
		{"duplicate endpoint name", one(n.CreateEndpoint("ep")), isForbidden, nil},
		{"address already allocated", one(n.CreateEndpoint("ep2", libnetwork.CreateOptionIpam(net.ParseIP("10.93.0.7"), nil, nil, nil))),
			isForbidden, is(ipamapi.ErrIPAlreadyAllocated)},
		{"delete network with endpoints", n.Delete(), isForbidden, named[*libnetwork.ActiveEndpointsError]},
		{"delete joined endpoint", ep.Delete(false), isForbidden, named[*libnetwork.ActiveContainerError]},
		{"second join", ep.Join(sb2), isForbidden, nil},
		{"join without sandbox", ep.Join(nil), isBadRequest, named[libnetwork.ErrInvalidJoin]},
	})
}

// A host port already taken, through a real bridge network and port map.
func TestErrorContractPortTaken(t *testing.T) {
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "taken", "10.95.0.0/24")
	r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.Tcp(80, 8080)}))
	_, taken := r.Run(t, n, "c2", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.Tcp(80, 8080)}))
	_, badPort := r.Run(t, n, "c3", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.Tcp(0, 8081)}))
	checkErrCases(t, []errCase{
		{"host port taken", taken, isForbidden, is(portmapper.ErrPortInUse)},
		{"bad port", badPort, isBadRequest, nil},
	})
}
