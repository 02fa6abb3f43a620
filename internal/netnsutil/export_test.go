package netnsutil

import (
	"errors"

	"github.com/vishvananda/netns"
)

// FailSwitchBack makes every switch but the one into ns fail, as a failed
// switch back to a thread's original namespace would, until restore.
func FailSwitchBack(ns *NS) (restore func()) {
	setNS = func(h netns.NsHandle) error {
		if h.Equal(ns.handle) {
			return netns.Set(h)
		}
		return errors.New("injected failure")
	}
	return func() { setNS = netns.Set }
}
