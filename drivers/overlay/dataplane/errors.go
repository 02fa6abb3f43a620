package dataplane

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/internal/linkerr"
)

// The package's errors name the operation and the object, carry a class
// of package types through their marker method, and unwrap to the cause.
type (
	// InvalidError: the request is malformed (BadRequest).
	InvalidError struct{ Op, Object, Reason string }
	// ConflictError: the request clashes with state in the kernel or in
	// the network (Forbidden): a VNI already in use by another device,
	// an endpoint ID attached with other settings.
	ConflictError struct {
		Op, Object, Reason string
		Err                error
	}
	// KernelError: a netlink or namespace call failed (Internal).
	KernelError struct {
		Op, Object string
		Err        error
	}
)

func (e *InvalidError) Error() string {
	return fmt.Sprintf("overlay data plane: %s %s: %s", e.Op, e.Object, e.Reason)
}
func (e *ConflictError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("overlay data plane: %s %s: %s", e.Op, e.Object, e.Reason)
	}
	return fmt.Sprintf("overlay data plane: %s %s: %s: %v", e.Op, e.Object, e.Reason, e.Err)
}
func (e *KernelError) Error() string {
	return fmt.Sprintf("overlay data plane: %s %s: %v", e.Op, e.Object, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }
func (e *KernelError) Unwrap() error   { return e.Err }

// BadRequest marks InvalidError as types.BadRequestError.
func (*InvalidError) BadRequest() {}

// Forbidden marks ConflictError as types.ForbiddenError.
func (*ConflictError) Forbidden() {}

// Internal marks KernelError as types.InternalError.
func (*KernelError) Internal() {}

func invalid(op, obj, format string, a ...any) error {
	return &InvalidError{Op: op, Object: obj, Reason: fmt.Sprintf(format, a...)}
}

func kernelErr(op, obj string, err error) error {
	return &KernelError{Op: op, Object: obj, Err: err}
}

// gone reports whether err says the object (link, entry, namespace) does
// not exist: teardown treats that as success.
func gone(err error) bool { return errors.Is(err, unix.ENOENT) || linkerr.IsNotFound(err) }
