package osl

import "fmt"

// SetLinkDown sets interface dstName down, keeping it and its addresses:
// the container's interface stays, but sends and receives nothing (an
// endpoint whose address another host holds now must not answer for it).
// An interface already gone is success.
func (s *Sandbox) SetLinkDown(dstName string) error {
	op := fmt.Sprintf("setting interface %s of sandbox %s down", dstName, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	link, err := s.nl.LinkByName(dstName)
	if isGone(err) {
		return nil
	}
	if err != nil {
		return kernelErr(err, "%s", op)
	}
	if err := s.nl.LinkSetDown(link); err != nil && !isGone(err) {
		return kernelErr(err, "%s", op)
	}
	return nil
}
