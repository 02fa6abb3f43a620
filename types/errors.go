// Package types holds the value types and error classes shared by the
// controller, drivers and IPAM.
package types

import (
	"errors"
	"fmt"
)

// Error classes. Callers test an error's class with errors.As against one of
// these marker interfaces; every class-bearing error also unwraps to its cause.
type (
	// NotFoundError: the named object does not exist.
	NotFoundError interface{ NotFound() }
	// BadRequestError: the input is malformed (invalid parameter).
	BadRequestError interface{ BadRequest() }
	// ForbiddenError: the request conflicts with current state or is not allowed now.
	ForbiddenError interface{ Forbidden() }
	// NotImplementedError: the driver or plugin does not support the operation.
	NotImplementedError interface{ NotImplemented() }
	// InternalError: something failed inside the library, a driver or the kernel.
	InternalError interface{ Internal() }
	// TimeoutError: an operation (typically a plugin call) ran out of time.
	TimeoutError interface{ Timeout() }
	// NoServiceError: a service (IPAM, plugin) could not provide what was asked.
	NoServiceError interface{ NoService() }
	// MaskableError: a failure the caller may log and ignore.
	MaskableError interface{ Maskable() }
)

// classed wraps an error with a class. The class is chosen by the kind field
// so one struct serves every class and errors.As keeps working through %w chains.
type classed struct {
	err  error
	kind errKind
}

type errKind int

const (
	kindNotFound errKind = iota
	kindBadRequest
	kindForbidden
	kindNotImplemented
	kindInternal
	kindTimeout
	kindNoService
	kindMaskable
)

func (e *classed) Error() string { return e.err.Error() }
func (e *classed) Unwrap() error { return e.err }

// The marker methods are defined on distinct named types so that a classed
// error implements exactly one class interface.
type (
	notFound       struct{ classed }
	badRequest     struct{ classed }
	forbidden      struct{ classed }
	notImplemented struct{ classed }
	internal       struct{ classed }
	timeout        struct{ classed }
	noService      struct{ classed }
	maskable       struct{ classed }
)

func (notFound) NotFound()             {}
func (badRequest) BadRequest()         {}
func (forbidden) Forbidden()           {}
func (notImplemented) NotImplemented() {}
func (internal) Internal()             {}
func (timeout) Timeout()               {}
func (noService) NoService()           {}
func (maskable) Maskable()             {}

func wrap(kind errKind, err error) error {
	c := classed{err: err, kind: kind}
	switch kind {
	case kindNotFound:
		return &notFound{c}
	case kindBadRequest:
		return &badRequest{c}
	case kindForbidden:
		return &forbidden{c}
	case kindNotImplemented:
		return &notImplemented{c}
	case kindTimeout:
		return &timeout{c}
	case kindNoService:
		return &noService{c}
	case kindMaskable:
		return &maskable{c}
	default:
		return &internal{c}
	}
}

// NotFoundErrorf formats a NotFound error; a %w verb in format keeps the cause.
func NotFoundErrorf(format string, a ...any) error {
	return wrap(kindNotFound, fmt.Errorf(format, a...))
}

// BadRequestErrorf formats a BadRequest (invalid parameter) error.
func BadRequestErrorf(format string, a ...any) error {
	return wrap(kindBadRequest, fmt.Errorf(format, a...))
}

// ForbiddenErrorf formats a Forbidden (conflict / not allowed now) error.
func ForbiddenErrorf(format string, a ...any) error {
	return wrap(kindForbidden, fmt.Errorf(format, a...))
}

// NotImplementedErrorf formats a NotImplemented error.
func NotImplementedErrorf(format string, a ...any) error {
	return wrap(kindNotImplemented, fmt.Errorf(format, a...))
}

// InternalErrorf formats an Internal error.
func InternalErrorf(format string, a ...any) error {
	return wrap(kindInternal, fmt.Errorf(format, a...))
}

// TimeoutErrorf formats a Timeout error.
func TimeoutErrorf(format string, a ...any) error { return wrap(kindTimeout, fmt.Errorf(format, a...)) }

// NoServiceErrorf formats a NoService error.
func NoServiceErrorf(format string, a ...any) error {
	return wrap(kindNoService, fmt.Errorf(format, a...))
}

// InternalMaskableErrorf formats an error that callers may log and ignore.
func InternalMaskableErrorf(format string, a ...any) error {
	return wrap(kindMaskable, fmt.Errorf(format, a...))
}

// IsClassed reports whether err already carries one of the classes, so a
// caller adding context can keep the original class instead of re-classing.
func IsClassed(err error) bool {
	_, ok := classOf(err)
	return ok
}

// directKind is the class err itself has, without unwrapping.
func directKind(err error) (errKind, bool) {
	switch err.(type) {
	case NotFoundError:
		return kindNotFound, true
	case BadRequestError:
		return kindBadRequest, true
	case ForbiddenError:
		return kindForbidden, true
	case NotImplementedError:
		return kindNotImplemented, true
	case InternalError:
		return kindInternal, true
	case TimeoutError:
		return kindTimeout, true
	case NoServiceError:
		return kindNoService, true
	case MaskableError:
		return kindMaskable, true
	}
	return 0, false
}

// classOf is the class of the outermost classed error in err's tree, in the
// order errors.As visits it.
func classOf(err error) (errKind, bool) {
	for err != nil {
		if k, ok := directKind(err); ok {
			return k, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if k, ok := classOf(e); ok {
					return k, true
				}
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}

// Is* helpers are shorthand for errors.As with a class interface.
func IsNotFound(err error) bool       { var t NotFoundError; return errors.As(err, &t) }
func IsBadRequest(err error) bool     { var t BadRequestError; return errors.As(err, &t) }
func IsForbidden(err error) bool      { var t ForbiddenError; return errors.As(err, &t) }
func IsNotImplemented(err error) bool { var t NotImplementedError; return errors.As(err, &t) }
func IsInternal(err error) bool       { var t InternalError; return errors.As(err, &t) }
func IsTimeout(err error) bool        { var t TimeoutError; return errors.As(err, &t) }
func IsNoService(err error) bool      { var t NoServiceError; return errors.As(err, &t) }
func IsMaskable(err error) bool       { var t MaskableError; return errors.As(err, &t) }

// Wrapf adds context to err. The result is itself of err's class (the
// outermost class in its chain; Internal if it has none), so a direct type
// assertion such as err.(ForbiddenError) works as well as errors.As, and it
// unwraps to err.
func Wrapf(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	kind, ok := classOf(err)
	if !ok {
		kind = kindInternal
	}
	return wrap(kind, fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), err))
}

// Classed returns err itself if it is of a class by direct type assertion,
// otherwise err under the class of its chain (Internal if it has none) with
// the same message, unwrapping to err. Public calls pass errors built by
// plain wrapping through it.
func Classed(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := directKind(err); ok {
		return err
	}
	kind, ok := classOf(err)
	if !ok {
		kind = kindInternal
	}
	return wrap(kind, err)
}
