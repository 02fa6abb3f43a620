package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// conformance runs the Store contract against any implementation.
// recordStore is a Store with the one-record calls Memory and Bolt add.
type recordStore interface {
	store.Store
	Put(kind, id string, value []byte) error
	Delete(kind, id string) error
}

var (
	_ recordStore = (*store.Memory)(nil)
	_ recordStore = (*store.Bolt)(nil)
)

func conformance(t *testing.T, s recordStore) {
	t.Helper()
	if _, err := s.Get("network", "a"); !types.IsNotFound(err) {
		t.Fatalf("Get of a missing record: want NotFound, got %v", err)
	}
	if err := s.Put("network", "a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("network", "b", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("endpoint", "a", []byte("ep")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("network", "a"); err != nil || string(v) != "one" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := s.Put("network", "a", []byte("uno")); err != nil {
		t.Fatal(err)
	}
	all, err := s.List("network")
	if err != nil || len(all) != 2 || string(all["a"]) != "uno" || string(all["b"]) != "two" {
		t.Fatalf("List = %q, %v", all, err)
	}
	for i := 0; i < 2; i++ { // the second delete is of a missing record
		if err := s.Delete("network", "a"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if all, _ := s.List("network"); len(all) != 1 {
		t.Fatalf("after delete: %q", all)
	}
	if all, _ := s.List("nothing"); len(all) != 0 {
		t.Fatalf("List of an unknown kind: %q", all)
	}
	if err := s.Apply(store.Op{Kind: "sandbox", ID: "s", Value: []byte("sb")},
		store.Op{Kind: "endpoint", ID: "a"}, store.Op{Kind: "endpoint", ID: "z", Value: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("endpoint", "a"); !types.IsNotFound(err) {
		t.Fatalf("Apply did not delete: %v", err)
	}
	if v, err := s.Get("sandbox", "s"); err != nil || string(v) != "sb" {
		t.Fatalf("Apply did not put: %q %v", v, err)
	}
	_ = s.Delete("endpoint", "z")
	_ = s.Put("endpoint", "a", []byte("ep"))
}

func TestMemory(t *testing.T) { conformance(t, store.NewMemory()) }

func TestBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "local.db")
	s, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Durable: a new open sees what the first wrote.
	s, err = store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get("endpoint", "a"); err != nil || string(v) != "ep" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

func TestBoltHeldIsTimeoutNotHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	first, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	_, err = store.OpenBolt(path, 200*time.Millisecond)
	if !types.IsTimeout(err) {
		t.Fatalf("second open: want Timeout, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second open took %v", d)
	}
}

func TestBoltCorruptIsClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	if err := os.WriteFile(path, []byte("this is not a bbolt file, just text that is long enough to be read as a page header"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenBolt(path, time.Second)
	if err == nil || !types.IsInternal(err) {
		t.Fatalf("corrupt file: want an Internal error, got %v", err)
	}
}
