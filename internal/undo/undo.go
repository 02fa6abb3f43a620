// Package undo is the one way a multi-step operation undoes itself: each
// finished step pushes its inverse, and on failure the stack runs them
// newest first, so the system is left as it was before the first step.
package undo

import "errors"

// Stack collects the inverse of each finished step. The zero value is an
// empty stack. It is not safe for concurrent use: one operation owns it.
type Stack struct {
	steps []func() error
}

// Push adds the inverse of the step just done.
func (s *Stack) Push(f func() error) { s.steps = append(s.steps, f) }

// PushFunc adds an inverse that reports no error (or whose error the
// operation has no use for: it is already failing with its own).
func (s *Stack) PushFunc(f func()) {
	s.steps = append(s.steps, func() error { f(); return nil })
}

// Len is the number of steps pushed.
func (s *Stack) Len() int { return len(s.steps) }

// Run runs every inverse, newest first, and returns all their errors
// joined: a failing inverse does not stop the older ones. The stack keeps
// its steps, so when every inverse is idempotent a caller may run it again
// after a partial failure (a teardown that is retried).
func (s *Stack) Run() error {
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Unless runs the stack when *ok is false, for the deferred call of an
// operation that sets ok as its last step. It returns Run's error, nil
// when it ran nothing.
func (s *Stack) Unless(ok *bool) error {
	if *ok {
		return nil
	}
	return s.Run()
}
