// Package linkerr classifies netlink errors the link-owning drivers share:
// teardown treats a link that is already gone as success, and both the
// netlink library's typed error and the kernel's ENODEV mean "gone".
package linkerr

import (
	"errors"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IsNotFound reports whether err says the link does not exist.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// IgnoreGone returns nil for nil and for a link-not-found error, err otherwise.
func IgnoreGone(err error) error {
	if err == nil || IsNotFound(err) {
		return nil
	}
	return err
}
