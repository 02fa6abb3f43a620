package libnetwork_test

import (
	"errors"
	"net"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// named reports whether err is itself of type T (direct assertion) and
// errors.As finds T in it too.
func named[T error](err error) bool {
	_, direct := err.(T)
	var as T
	return direct && errors.As(err, &as)
}

// Every error of the contract's minimum mapping, and every named error type,
// returned by the public API: of its class by direct assertion and still
// unwrapping to its cause.
func TestErrorContract(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.93.0.0/24", "10.93.0.254"))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep", libnetwork.CreateOptionIpam(net.ParseIP("10.93.0.7"), nil, nil, nil)))
	sb := testrig.ExtSandbox(t, c, "ctr")
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	sb2 := testrig.ExtSandbox(t, c, "ctr2")
	one := func(_ any, err error) error { return err }
	badMAC := libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: "nonsense"})

	testrig.CheckErrCases(t, []testrig.ErrCase{
		{"unknown network by name", one(c.NetworkByName("nope")), testrig.IsNotFound, named[libnetwork.ErrNoSuchNetwork]},
		{"unknown network by id", one(c.NetworkByID("nope")), testrig.IsNotFound, named[libnetwork.ErrNoSuchNetwork]},
		{"unknown endpoint by name", one(n.EndpointByName("nope")), testrig.IsNotFound, named[libnetwork.ErrNoSuchEndpoint]},
		{"unknown endpoint by id", one(n.EndpointByID("nope")), testrig.IsNotFound, named[libnetwork.ErrNoSuchEndpoint]},
		{"unknown sandbox", one(c.SandboxByID("nope")), testrig.IsNotFound, named[libnetwork.ErrNoSuchSandbox]},
		{"unknown driver", one(c.NewNetwork("no-such-driver", "x", "")), testrig.IsNotFound, named[libnetwork.NetworkTypeError]},
		{"empty network name", one(c.NewNetwork("fake", "", "")), testrig.IsBadRequest, named[libnetwork.ErrInvalidName]},
		{"blank network name", one(c.NewNetwork("fake", "  ", "")), testrig.IsBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty name lookup", one(c.NetworkByName("")), testrig.IsBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty id lookup", one(c.NetworkByID("")), testrig.IsBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty endpoint name", one(n.CreateEndpoint("")), testrig.IsBadRequest, named[libnetwork.ErrInvalidName]},
		{"empty endpoint id lookup", one(n.EndpointByID("")), testrig.IsBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty sandbox id lookup", one(c.SandboxByID("")), testrig.IsBadRequest, named[libnetwork.ErrInvalidID]},
		{"empty container id", one(c.NewSandbox("")), testrig.IsBadRequest, named[libnetwork.InvalidContainerIDError]},
		{"empty sandbox name", sb2.Rename(""), testrig.IsBadRequest, named[libnetwork.ErrInvalidName]},
		{"bad CIDR", one(c.NewNetwork("fake", "badcidr", "", testrig.IPAMOpt("10.93.1.0/33", ""))), testrig.IsBadRequest, testrig.Is(ipamapi.ErrInvalidPool)},
		{"gateway outside subnet", one(c.NewNetwork("fake", "badgw", "", testrig.IPAMOpt("10.93.2.0/24", "10.94.0.1"))), testrig.IsBadRequest, testrig.Is(ipamapi.ErrIPOutOfRange)},
		{"bad MAC", one(n.CreateEndpoint("badmac", badMAC)), testrig.IsBadRequest, nil},
		{"bad option type", one(c.NewNetwork("fake", "badopt", "",
			libnetwork.NetworkOptionGeneric(map[string]any{netlabel.EnableIPv6: "yes"}))), testrig.IsBadRequest, nil},
		{"bad sandbox option type", one(c.NewSandbox("badopt",
			libnetwork.OptionGeneric(map[string]any{netlabel.PortMap: "80:80"}))), testrig.IsBadRequest, nil},
		{"bad protocol", (&types.TransportPort{}).FromString("80/nope"), testrig.IsBadRequest, nil},
		{"duplicate network name", one(c.NewNetwork("fake", "n", "")), testrig.IsForbidden, named[libnetwork.NetworkNameError]},
		{"duplicate network id", one(c.NewNetwork("fake", "n2", n.ID())), testrig.IsForbidden, named[libnetwork.NetworkNameError]},
		{"duplicate endpoint name", one(n.CreateEndpoint("ep")), testrig.IsForbidden, nil},
		{"address already allocated", one(n.CreateEndpoint("ep2", libnetwork.CreateOptionIpam(net.ParseIP("10.93.0.7"), nil, nil, nil))),
			testrig.IsForbidden, testrig.Is(ipamapi.ErrIPAlreadyAllocated)},
		{"delete network with endpoints", n.Delete(), testrig.IsForbidden, named[*libnetwork.ActiveEndpointsError]},
		{"delete joined endpoint", ep.Delete(false), testrig.IsForbidden, named[*libnetwork.ActiveContainerError]},
		{"second join", ep.Join(sb2), testrig.IsForbidden, nil},
		{"join without sandbox", ep.Join(nil), testrig.IsBadRequest, named[libnetwork.ErrInvalidJoin]},
	})
}
