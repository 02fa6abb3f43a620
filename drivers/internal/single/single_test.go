package single

import (
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

func TestOneNetworkUndeletable(t *testing.T) {
	d := New("null")
	if err := d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "a"}); err != nil {
		t.Fatal(err)
	}
	// The same network again (a restart re-registering it) is fine.
	if err := d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "b"}); !types.IsForbidden(err) {
		t.Fatalf("second network: want Forbidden, got %v", err)
	}
	if err := d.DeleteNetwork("a"); !types.IsForbidden(err) {
		t.Fatalf("delete: want Forbidden, got %v", err)
	}
	res, err := d.Join(driverapi.JoinRequest{NetworkID: "a", EndpointID: "e"})
	if err != nil || res.SrcName != "" || res.DstName != "" || res.Gateway != nil {
		t.Fatalf("join: want an empty result, got %+v, %v", res, err)
	}
	info, err := d.EndpointOperInfo("a", "e")
	if err != nil || len(info) != 0 {
		t.Fatalf("oper info: %v %v", info, err)
	}
}
