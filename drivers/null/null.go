// Package null is the "null" network driver: a sandbox on it has only lo.
package null

import (
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/single"
)

// NetworkType is the driver's name.
const NetworkType = "null"

// New returns the null driver.
func New() *single.Driver { return single.New(NetworkType) }

// Capability is what the driver declares: local, and address-less (its
// network gets no pools, its endpoints no addresses, gateway or DNS).
func Capability() driverapi.Capability { return single.Capability() }
