package overlay

import (
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/optval"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Driver option keys, upstream's.
const (
	// VXLANIDListOpt names the network's VNI: upstream takes a
	// comma-separated list (one per IPv4 pool); this data plane carries
	// one VNI per network, so the list must hold exactly one.
	VXLANIDListOpt = netlabel.DriverPrefix + ".overlay.vxlanid_list"
	// EncryptedOpt asks for IPsec between hosts; it is refused.
	EncryptedOpt = "encrypted"
)

// VNI bounds: upstream's automatic range starts at 4096, above what
// hand-made VXLANs of a lab tend to use.
const (
	MinAutoVNI = 4096
	MaxVNI     = 1<<24 - 1
)

// netOptions are a network's driver options.
type netOptions struct {
	vni uint32 // 0: none named, the controller chooses
	mtu int    // 0: the underlay's MTU minus the VXLAN overhead
}

// parseOptions reads the driver options under netlabel.GenericData.
// Every key it does not know is refused: an option accepted and ignored
// would look as if it worked.
func parseOptions(what string, opts map[string]any) (netOptions, error) {
	var o netOptions
	g, err := optval.DriverOptions(what, opts)
	if err != nil {
		return o, err
	}
	for key, v := range g {
		switch key {
		case VXLANIDListOpt:
			s, ok := v.(string)
			if !ok {
				return o, types.BadRequestErrorf("%s: option %s: want a string, not %T", what, key, v)
			}
			vni, err := parseVNIList(s)
			if err != nil {
				return o, types.Wrapf(err, "%s: option %s", what, key)
			}
			o.vni = vni
		case netlabel.DriverMTU:
			mtu, err := optval.Int(v)
			if err != nil {
				return o, types.BadRequestErrorf("%s: option %s: %w", what, key, err)
			}
			if mtu != 0 && (mtu < 68 || mtu > 65535) {
				return o, types.BadRequestErrorf("%s: option %s: MTU %d out of range [68, 65535]", what, key, mtu)
			}
			o.mtu = mtu
		case EncryptedOpt:
			return o, types.NotImplementedErrorf("%s: option %s: encrypted overlay networks are not implemented", what, key)
		default:
			return o, types.BadRequestErrorf("%s: unknown option %q", what, key)
		}
	}
	return o, nil
}

// parseVNIList reads upstream's comma-separated VNI list, which here
// must name exactly one VNI.
func parseVNIList(s string) (uint32, error) {
	parts := strings.Split(s, ",")
	var vnis []uint32
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return 0, types.BadRequestErrorf("empty VNI in %q", s)
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 || n > MaxVNI {
			return 0, types.BadRequestErrorf("VNI %q is not a number in [1, %d]", p, MaxVNI)
		}
		vnis = append(vnis, uint32(n))
	}
	if len(vnis) != 1 {
		return 0, types.NotImplementedErrorf("%d VNIs in %q: an overlay network carries one VNI (one IPv4 pool) here", len(vnis), s)
	}
	return vnis[0], nil
}

// ValidateNetwork refuses what CreateNetwork would for the options alone:
// unknown keys, a bad VNI list or MTU, and a host whose VTEP is not known.
func (d *Driver) ValidateNetwork(nid string, opts map[string]any) error {
	what := "validating overlay network " + nid
	if _, err := parseOptions(what, opts); err != nil {
		return err
	}
	// Refused here, before the controller claims the network and its VNI
	// in the global store for a CreateNetwork that would refuse it.
	if !d.localVTEP().IsValid() {
		return types.ForbiddenErrorf("%s: this host's VTEP address is not known: overlay networks need a controller with a global store and a discovery address", what)
	}
	return nil
}

// ClusterIDs asks for the network's VNI: the one the options name, or
// one free in [MinAutoVNI, MaxVNI].
func (d *Driver) ClusterIDs(nid string, opts map[string]any) (driverapi.ClusterIDRequest, error) {
	o, err := parseOptions("choosing the VNI of overlay network "+nid, opts)
	if err != nil {
		return driverapi.ClusterIDRequest{}, err
	}
	if o.vni != 0 {
		return driverapi.ClusterIDRequest{Fixed: []uint32{o.vni}}, nil
	}
	return driverapi.ClusterIDRequest{Count: 1, Min: MinAutoVNI, Max: MaxVNI}, nil
}
