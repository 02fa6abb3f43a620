package testrig

import (
	"errors"
	"testing"

	"github.com/opencnm/libnetwork/types"
)

// The class checks are direct type assertions, as callers written for
// upstream make them; errors.As would also find a class buried in a chain.

// IsNotFound reports whether err is a types.NotFoundError by direct assertion.
func IsNotFound(err error) bool { _, ok := err.(types.NotFoundError); return ok }

// IsBadRequest reports whether err is a types.BadRequestError by direct assertion.
func IsBadRequest(err error) bool { _, ok := err.(types.BadRequestError); return ok }

// IsForbidden reports whether err is a types.ForbiddenError by direct assertion.
func IsForbidden(err error) bool { _, ok := err.(types.ForbiddenError); return ok }

// IsInternal reports whether err is a types.InternalError by direct assertion.
func IsInternal(err error) bool { _, ok := err.(types.InternalError); return ok }

// Is returns a cause check: errors.Is(err, target).
func Is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// ErrCase is one entry of the contract's error list: the error a public
// call returned, the class it must have by direct assertion, and the cause
// (a named type or a sentinel) it must still unwrap to. An alias of an
// unnamed struct, so the cases stay one positional line each.
type ErrCase = struct {
	Name  string
	Err   error
	Class func(error) bool
	Cause func(error) bool
}

// CheckErrCases reports every case whose error is missing, not of its
// class, or not unwrapping to its cause.
func CheckErrCases(t *testing.T, cases []ErrCase) {
	t.Helper()
	for _, tc := range cases {
		switch {
		case tc.Err == nil:
			t.Errorf("%s: no error", tc.Name)
		case !tc.Class(tc.Err):
			t.Errorf("%s: %T %q is not of its class by direct type assertion", tc.Name, tc.Err, tc.Err)
		case tc.Cause != nil && !tc.Cause(tc.Err):
			t.Errorf("%s: %T %q does not unwrap to its cause", tc.Name, tc.Err, tc.Err)
		}
	}
}
