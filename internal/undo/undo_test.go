package undo

import (
	"errors"
	"reflect"
	"testing"
)

func TestRunNewestFirst(t *testing.T) {
	var s Stack
	var got []int
	for i := 1; i <= 3; i++ {
		s.Push(func() error { got = append(got, i); return nil })
	}
	s.PushFunc(func() { got = append(got, 4) })
	if s.Len() != 4 {
		t.Fatalf("Len = %d, want 4", s.Len())
	}
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if want := []int{4, 3, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

func TestRunKeepsGoingAndJoinsErrors(t *testing.T) {
	var s Stack
	e1, e3 := errors.New("one"), errors.New("three")
	ran := 0
	s.Push(func() error { ran++; return e1 })
	s.Push(func() error { ran++; return nil })
	s.Push(func() error { ran++; return e3 })
	err := s.Run()
	if ran != 3 {
		t.Fatalf("ran %d inverses, want 3: a failing one must not stop the older ones", ran)
	}
	if !errors.Is(err, e1) || !errors.Is(err, e3) {
		t.Fatalf("Run = %v, want both errors joined", err)
	}
}

func TestRunAgainRetries(t *testing.T) {
	var s Stack
	fail := true
	s.Push(func() error {
		if fail {
			fail = false
			return errors.New("busy")
		}
		return nil
	})
	if err := s.Run(); err == nil {
		t.Fatal("first Run: want the inverse's error")
	}
	if err := s.Run(); err != nil {
		t.Fatalf("second Run (retry): %v", err)
	}
}

func TestUnless(t *testing.T) {
	var s Stack
	ran := false
	s.PushFunc(func() { ran = true })
	ok := true
	if err := s.Unless(&ok); err != nil || ran {
		t.Fatalf("Unless(true) ran the stack (err %v)", err)
	}
	ok = false
	if err := s.Unless(&ok); err != nil || !ran {
		t.Fatalf("Unless(false) did not run the stack (err %v)", err)
	}
}

func TestZeroValueRuns(t *testing.T) {
	var s Stack
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
}
