package optval

import (
	"testing"

	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

func TestDriverOptions(t *testing.T) {
	for _, in := range []any{nil, map[string]string{"k": "v"}, options.Generic{"k": "v"}, map[string]any{"k": "v"}} {
		g, err := DriverOptions("op", map[string]any{netlabel.GenericData: in})
		if err != nil {
			t.Fatalf("%T: %v", in, err)
		}
		if in != nil && g["k"] != "v" {
			t.Fatalf("%T: got %v", in, g)
		}
	}
	if _, err := DriverOptions("op", map[string]any{netlabel.GenericData: 7}); !types.IsBadRequest(err) {
		t.Fatalf("an int as driver options: %v, want BadRequest", err)
	}
}

func TestInt(t *testing.T) {
	for in, want := range map[any]int{3: 3, int64(4): 4, 5.0: 5, " 6 ": 6, "": 0} {
		if got, err := Int(in); err != nil || got != want {
			t.Fatalf("Int(%#v) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []any{1.5, "x", true} {
		if _, err := Int(bad); err == nil {
			t.Fatalf("Int(%#v) accepted", bad)
		}
	}
}

func TestNoPublishedPorts(t *testing.T) {
	if err := NoPublishedPorts("op", "overlay", "it is internal", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	asked := map[string]any{netlabel.PortMap: []types.PortBinding{{Proto: types.TCP, Port: 80}}}
	if err := NoPublishedPorts("op", "overlay", "it is internal", asked); !types.IsBadRequest(err) {
		t.Fatalf("a published port: %v, want BadRequest", err)
	}
}
