package osl

import (
	"fmt"

	"github.com/opencnm/libnetwork/types"
)

// SetLinkUp sets the interface dstName up or down, keeping its addresses
// and routes, so an interface taken out of service can come back as it
// was. Gone already is NotFound.
func (s *Sandbox) SetLinkUp(dstName string, up bool) error {
	if dstName == "lo" || dstName == "" {
		return types.BadRequestErrorf("setting interface %q of sandbox %s up or down: invalid name", dstName, s.key)
	}
	op := fmt.Sprintf("setting interface %s of sandbox %s up=%v", dstName, s.key, up)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	link, err := s.nl.LinkByName(dstName)
	if err != nil {
		if isGone(err) {
			return types.NotFoundErrorf("%s: no such link", op)
		}
		return kernelErr(err, "%s: finding link", op)
	}
	if up {
		err = s.nl.LinkSetUp(link)
	} else {
		err = s.nl.LinkSetDown(link)
	}
	if err != nil {
		return kernelErr(err, "%s", op)
	}
	return nil
}
