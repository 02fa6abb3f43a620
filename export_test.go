package libnetwork

import "time"

// SetDNSCheckInterval makes c check its sandboxes' DNS redirects every d
// from now on (tests cannot wait for the default).
func SetDNSCheckInterval(c *Controller, d time.Duration) {
	c.repair.close()
	c.repair = c.startRepairLoop(d)
}
