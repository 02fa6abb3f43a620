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

// Wrapf and Classed return a value of the cause's class itself, so the
// direct type assertion callers written for upstream make works, and the
// result still unwraps to the cause.
func TestWrappedErrorsAreOfTheirClassDirectly(t *testing.T) {
	cause := errors.New("cause")
	direct := map[string]func(error) bool{
		"NotFound":       func(e error) bool { _, ok := e.(NotFoundError); return ok },
		"BadRequest":     func(e error) bool { _, ok := e.(BadRequestError); return ok },
		"Forbidden":      func(e error) bool { _, ok := e.(ForbiddenError); return ok },
		"NotImplemented": func(e error) bool { _, ok := e.(NotImplementedError); return ok },
		"Internal":       func(e error) bool { _, ok := e.(InternalError); return ok },
		"Timeout":        func(e error) bool { _, ok := e.(TimeoutError); return ok },
		"NoService":      func(e error) bool { _, ok := e.(NoServiceError); return ok },
		"Maskable":       func(e error) bool { _, ok := e.(MaskableError); return ok },
	}
	classed := map[string]error{
		"NotFound":       NotFoundErrorf("x: %w", cause),
		"BadRequest":     BadRequestErrorf("x: %w", cause),
		"Forbidden":      ForbiddenErrorf("x: %w", cause),
		"NotImplemented": NotImplementedErrorf("x: %w", cause),
		"Internal":       InternalErrorf("x: %w", cause),
		"Timeout":        TimeoutErrorf("x: %w", cause),
		"NoService":      NoServiceErrorf("x: %w", cause),
		"Maskable":       InternalMaskableErrorf("x: %w", cause),
	}
	for name, err := range classed {
		for how, got := range map[string]error{
			"Wrapf":           Wrapf(err, "op"),
			"Wrapf of %w":     Wrapf(fmt.Errorf("outer: %w", err), "op"),
			"Classed of %w":   Classed(fmt.Errorf("outer: %w", err)),
			"Classed of Join": Classed(errors.Join(errors.New("plain"), err)),
		} {
			if !direct[name](got) || !errors.Is(got, err) || !errors.Is(got, cause) {
				t.Errorf("%s %s: %T %v is not %s itself or lost its cause", how, name, got, got, name)
			}
		}
		if Classed(err) != err {
			t.Errorf("Classed(%s) is not the error itself", name)
		}
	}
	if got := Classed(cause); !direct["Internal"](got) || !errors.Is(got, cause) || got.Error() != cause.Error() {
		t.Errorf("Classed of an unclassed error: %T %v", got, got)
	}
	if Classed(nil) != nil {
		t.Error("Classed(nil) is not nil")
	}
}
