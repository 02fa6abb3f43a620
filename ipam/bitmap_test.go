package ipam

import (
	"math"
	"math/rand/v2"
	"testing"
)

// model is the obvious set the bitmap is checked against.
type model map[uint64]bool

func (m model) findFree(from, to, size uint64) (uint64, bool) {
	for o := from; o < to && o < size; o++ {
		if !m[o] {
			return o, true
		}
	}
	return 0, false
}

func TestBitmapAgainstModel(t *testing.T) {
	sizes := []uint64{1, 2, 5, 63, 64, 65, 100, 4095, 4096, 4097, 65536, 1 << 18, 1<<18 + 1, 1 << 20, 1 << 32, 1 << 40, math.MaxUint64}
	for _, size := range sizes {
		rng := rand.New(rand.NewPCG(size, 7))
		b := newBitmap(size)
		m := model{}
		// Hot spots at both ends and the middle, so sets collide and
		// node boundaries (and the end of the range) are exercised.
		const win = 9000
		spots := []uint64{0, size / 2, size - min(size, win)}
		pick := func() (uint64, uint64) {
			lo := spots[rng.IntN(len(spots))]
			hi := lo + min(win, size-lo)
			return lo, hi
		}
		for i := 0; i < 20000; i++ {
			lo, hi := pick()
			o := lo + rng.Uint64N(hi-lo)
			switch rng.IntN(4) {
			case 0, 1:
				if got, want := b.set(o), !m[o]; got != want {
					t.Fatalf("size %d: set(%d) = %v, want %v", size, o, got, want)
				}
				m[o] = true
			case 2:
				if got, want := b.clear(o), m[o]; got != want {
					t.Fatalf("size %d: clear(%d) = %v, want %v", size, o, got, want)
				}
				delete(m, o)
			case 3:
				to := o + rng.Uint64N(hi-o+1)
				got, gok := b.findFree(o, to)
				want, wok := m.findFree(o, to, size)
				if got != want || gok != wok {
					t.Fatalf("size %d: findFree(%d, %d) = %d,%v want %d,%v", size, o, to, got, gok, want, wok)
				}
			}
			if b.isSet(o) != m[o] {
				t.Fatalf("size %d: isSet(%d) = %v", size, o, !m[o])
			}
		}
		if b.count != uint64(len(m)) {
			t.Fatalf("size %d: count %d, model %d", size, b.count, len(m))
		}
		var last uint64
		n := 0
		b.forEach(func(o uint64) {
			if !m[o] || (n > 0 && o <= last) {
				t.Fatalf("size %d: forEach gave %d (after %d)", size, o, last)
			}
			last = o
			n++
		})
		if n != len(m) {
			t.Fatalf("size %d: forEach visited %d, want %d", size, n, len(m))
		}
		// Clearing everything frees every node.
		for o := range m {
			b.clear(o)
		}
		if b.height > 0 && b.root.used != 0 {
			t.Fatalf("size %d: root still has children %#x after clearing all", size, b.root.used)
		}
	}
}

func TestBitmapFillCompletely(t *testing.T) {
	for _, size := range []uint64{64, 4096, 65536, 300000} {
		b := newBitmap(size)
		for i := uint64(0); i < size; i++ {
			o, ok := b.findFree(0, size)
			if !ok || o != i {
				t.Fatalf("size %d: fill step %d got %d,%v", size, i, o, ok)
			}
			b.set(o)
		}
		if o, ok := b.findFree(0, size); ok {
			t.Fatalf("size %d: full bitmap returned %d", size, o)
		}
		b.clear(size / 3)
		if o, ok := b.findFree(0, size); !ok || o != size/3 {
			t.Fatalf("size %d: after clear got %d,%v want %d", size, o, ok, size/3)
		}
		if _, ok := b.findFree(size/3+1, size); ok {
			t.Fatalf("size %d: found a free ordinal after the only hole", size)
		}
	}
}

func TestBitmapTopOfHugeRange(t *testing.T) {
	b := newBitmap(math.MaxUint64)
	top := uint64(math.MaxUint64 - 1)
	if !b.set(top) || !b.isSet(top) {
		t.Fatal("cannot set the last ordinal")
	}
	if _, ok := b.findFree(top, math.MaxUint64); ok {
		t.Fatal("found a free ordinal past the last one")
	}
	if o, ok := b.findFree(top-1, math.MaxUint64); !ok || o != top-1 {
		t.Fatalf("got %d,%v", o, ok)
	}
	if !b.clear(top) || b.count != 0 || b.root.used != 0 {
		t.Fatal("clear of the last ordinal did not empty the tree")
	}
}

// FuzzBitmap runs an op sequence against the model; it must never panic
// or disagree.
func FuzzBitmap(f *testing.F) {
	f.Add(uint16(100), []byte{0, 1, 2, 3, 4, 5, 6})
	f.Add(uint16(4097), []byte{255, 0, 128, 7, 9})
	f.Fuzz(func(t *testing.T, sz uint16, ops []byte) {
		size := uint64(sz)%20000 + 1
		b := newBitmap(size)
		m := model{}
		for i := 0; i+2 < len(ops); i += 3 {
			o := (uint64(ops[i+1])<<8 | uint64(ops[i+2])) % size
			switch ops[i] % 3 {
			case 0:
				if b.set(o) == m[o] {
					t.Fatalf("set(%d) disagrees", o)
				}
				m[o] = true
			case 1:
				if b.clear(o) != m[o] {
					t.Fatalf("clear(%d) disagrees", o)
				}
				delete(m, o)
			case 2:
				got, gok := b.findFree(o, size)
				want, wok := m.findFree(o, size, size)
				if got != want || gok != wok {
					t.Fatalf("findFree(%d) = %d,%v want %d,%v", o, got, gok, want, wok)
				}
			}
		}
	})
}
