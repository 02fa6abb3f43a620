package records

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"

	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

func TestGenericRoundTripKeepsTypes(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:ac:11:00:02")
	in := map[string]any{
		netlabel.GenericData: options.Generic{"BridgeName": "br0", "Mtu": 1400, "EnableICC": false,
			"nested": map[string]any{"x": int64(7)}},
		"strs":                map[string]string{"com.docker.network.bridge.name": "br1"},
		netlabel.MacAddress:   mac,
		netlabel.PortMap:      []types.PortBinding{{Proto: types.TCP, Port: 80, HostIP: net.ParseIP("127.0.0.1").To4(), HostPort: 8080}},
		netlabel.ExposedPorts: []types.TransportPort{{Proto: types.UDP, Port: 53}},
		netlabel.EnableIPv6:   true,
		"list":                []string{"a", "b"},
		"none":                nil,
	}
	enc, err := EncodeGeneric(in)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(enc)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]TypedValue
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeGeneric(back)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the map:\n in: %#v\nout: %#v", in, out)
	}
}
