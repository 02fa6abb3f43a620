package types

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassesSurviveWrapping(t *testing.T) {
	cause := errors.New("cause")
	cases := []struct {
		err  error
		is   func(error) bool
		name string
	}{
		{NotFoundErrorf("x: %w", cause), IsNotFound, "NotFound"},
		{BadRequestErrorf("x: %w", cause), IsBadRequest, "BadRequest"},
		{ForbiddenErrorf("x: %w", cause), IsForbidden, "Forbidden"},
		{NotImplementedErrorf("x: %w", cause), IsNotImplemented, "NotImplemented"},
		{InternalErrorf("x: %w", cause), IsInternal, "Internal"},
		{TimeoutErrorf("x: %w", cause), IsTimeout, "Timeout"},
		{NoServiceErrorf("x: %w", cause), IsNoService, "NoService"},
		{InternalMaskableErrorf("x: %w", cause), IsMaskable, "Maskable"},
	}
	for _, c := range cases {
		if !c.is(c.err) || !errors.Is(c.err, cause) {
			t.Errorf("%s: class or cause lost: %v", c.name, c.err)
		}
		// Wrapf keeps the class, through %w chains and multi-%w errors alike.
		wrapped := Wrapf(fmt.Errorf("outer: %w", c.err), "op")
		if !c.is(wrapped) || IsInternal(wrapped) && c.name != "Internal" {
			t.Errorf("%s: Wrapf changed the class: %v", c.name, wrapped)
		}
		multi := Wrapf(fmt.Errorf("a %w b %w", errors.New("plain"), c.err), "op")
		if !c.is(multi) || IsInternal(multi) && c.name != "Internal" {
			t.Errorf("%s: a multi-%%w error was re-classed: %v", c.name, multi)
		}
	}
	// An unclassed error becomes Internal.
	if err := Wrapf(cause, "op"); !IsInternal(err) || !errors.Is(err, cause) {
		t.Errorf("unclassed: %v", err)
	}
	if Wrapf(nil, "op") != nil {
		t.Error("Wrapf(nil) is not nil")
	}
}
