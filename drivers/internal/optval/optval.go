// Package optval reads the values of driver options as callers hand them
// in: Go values, strings from labels and CLI flags, or what encoding/json
// made of them in a stored record.
package optval

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// Int reads a whole number; a blank string is 0.
func Int(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64: // what encoding/json gives
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int(x), nil
	case string:
		if strings.TrimSpace(x) == "" {
			return 0, nil
		}
		return strconv.Atoi(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("want a number, not %T", v)
}

// NoPublishedPorts refuses a non-empty netlabel.PortMap in opts (an
// endpoint's options or a sandbox's labels) of a driver that cannot
// publish ports: the error names the driver's networks and says why.
func NoPublishedPorts(what, driver, why string, opts map[string]any) error {
	v, ok := opts[netlabel.PortMap]
	if !ok || v == nil {
		return nil
	}
	pbs, ok := v.([]types.PortBinding)
	if !ok {
		return types.BadRequestErrorf("%s: option %s must be []types.PortBinding, not %T", what, netlabel.PortMap, v)
	}
	if len(pbs) > 0 {
		return types.BadRequestErrorf("%s: %s networks cannot publish ports (%d asked): %s", what, driver, len(pbs), why)
	}
	return nil
}

// DriverOptions returns the driver options of a network's generic map
// (netlabel.GenericData), whichever map type the caller gave them in; none
// is an empty map.
func DriverOptions(what string, opts map[string]any) (map[string]any, error) {
	switch m := opts[netlabel.GenericData].(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]string:
		g := make(map[string]any, len(m))
		for k, v := range m {
			g[k] = v
		}
		return g, nil
	case options.Generic:
		return m, nil
	case map[string]any:
		return m, nil
	default:
		return nil, types.BadRequestErrorf("%s: unsupported type %T for %s", what, m, netlabel.GenericData)
	}
}
