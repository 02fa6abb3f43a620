// Package host is the "host" network driver: containers on it share the host
// namespace (their sandboxes use libnetwork.OptionUseDefaultSandbox).
package host

import "github.com/opencnm/libnetwork/drivers/internal/single"

// NetworkType is the driver's name.
const NetworkType = "host"

// New returns the host driver.
func New() *single.Driver { return single.New(NetworkType) }
