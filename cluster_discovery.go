package libnetwork

import (
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// announceSelf tells a driver of global data scope that implements
// driverapi.Discoverer this host's discovery address (the overlay's VTEP),
// once, when it is registered. Nothing is announced without a global store
// or a discovery address, nor to local-scope drivers.
func (c *Controller) announceSelf(name string, e *driverEntry) error {
	if c.cl == nil || !c.cl.host.Address.IsValid() || e.capability.DataScope != driverapi.GlobalScope {
		return nil
	}
	d, ok := e.Driver.(driverapi.Discoverer)
	if !ok {
		return nil
	}
	a := c.cl.host.Address.String()
	if err := d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: a, BindAddress: a, Self: true}); err != nil {
		return types.Wrapf(err, "announcing this host (%s) to driver %s", a, name)
	}
	return nil
}

// announceBuiltins announces this host to the built-in drivers New registered.
func (c *Controller) announceBuiltins() error {
	c.drv.mu.Lock()
	var names []string
	var entries []*driverEntry
	for n, e := range c.drv.drivers {
		names, entries = append(names, n), append(entries, e)
	}
	c.drv.mu.Unlock()
	for i, e := range entries {
		if err := c.announceSelf(names[i], e); err != nil {
			return err
		}
	}
	return nil
}
