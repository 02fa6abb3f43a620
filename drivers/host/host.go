// Package host is the "host" network driver: containers on it share the host
// namespace (their sandboxes use libnetwork.OptionUseDefaultSandbox).
package host

import (
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/single"
)

// NetworkType is the driver's name.
const NetworkType = "host"

// New returns the host driver.
func New() *single.Driver { return single.New(NetworkType) }

// Capability is what the driver declares: local, and address-less (its
// network gets no pools, its endpoints no addresses, gateway or DNS).
func Capability() driverapi.Capability { return single.Capability() }
