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
