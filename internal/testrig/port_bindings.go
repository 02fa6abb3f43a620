package testrig

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// BindingIs6 reports whether pb is an IPv6 binding: its container address
// (what its map element's family follows) is IPv6.
func BindingIs6(pb types.PortBinding) bool { return pb.IP != nil && pb.IP.To4() == nil }

func SplitFamilies(pbs []types.PortBinding) (v4, v6 []types.PortBinding) {
	for _, pb := range pbs {
		if BindingIs6(pb) {
			v6 = append(v6, pb)
		} else {
			v4 = append(v4, pb)
		}
	}
	return v4, v6
}

// PortName names pb's host side with its family: tcp/0.0.0.0:8080 and
// tcp/[::]:8080 are two bindings.
func PortName(pb types.PortBinding) string {
	ip := "0.0.0.0"
	if BindingIs6(pb) {
		ip = "::"
	}
	if pb.HostIP != nil && !pb.HostIP.IsUnspecified() {
		ip = pb.HostIP.String()
	}
	return fmt.Sprintf("%s/%s", pb.Proto, net.JoinHostPort(ip, fmt.Sprint(pb.HostPort)))
}

// StoredEndpoints reads every endpoint record of the (stopped)
// controller whose data directory is dataDir, by endpoint ID.
func StoredEndpoints(t *testing.T, dataDir string) map[string]records.Endpoint {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(dataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	set, err := records.Load(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(set.Undecodable...); err != nil {
		t.Fatal(err)
	}
	out := map[string]records.Endpoint{}
	for _, r := range set.Endpoints {
		out[r.ID] = r
	}
	return out
}

func PortNames(pbs []types.PortBinding) []string {
	var out []string
	for _, pb := range pbs {
		out = append(out, PortName(pb))
	}
	slices.Sort(out)
	return out
}
