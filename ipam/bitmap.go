package ipam

import "math/bits"

// The allocation bitmap is a 64-ary radix tree of 64-bit words. Leaves hold
// 64 words (4096 ordinals); every node also keeps a "full" summary word whose
// bit i says child i has no clear bit left. Finding the lowest clear bit at or
// after an ordinal therefore skips full regions a word at a time at every
// level, so the cost is O(tree height) whatever the fill ratio, unlike a
// run-length sequence that has to be walked. Nodes are created on first set
// and freed when their last bit is cleared, so memory follows the number of
// allocated addresses: an IPv6 /64 costs nothing until addresses are taken,
// and a full IPv4 /16 costs one inner node and 16 leaves (about 9 KiB).

const (
	leafBits  = 12 // log2 of the ordinals in a leaf
	levelBits = 6  // log2 of the fan-out of an inner node
	allOnes   = ^uint64(0)
	maxHeight = 9 // inner levels needed for 2^64 ordinals: 12+6*9 >= 64
)

type leaf struct {
	words [64]uint64
	full  uint64 // bit i: words[i] == allOnes
	used  uint64 // bit i: words[i] != 0
}

type inner struct {
	full uint64 // bit i: child i has no clear bit (or lies past the end)
	used uint64 // bit i: child i exists
	// Children, grown on demand up to 64 so a sparse path (an IPv6 pool
	// with a few low addresses) costs a few words per level, not 512 bytes.
	kids   []*inner // when this node is above level 1
	leaves []*leaf  // when this node is at level 1
}

// kid and leafAt return child j, or nil if it does not exist.
func (n *inner) kid(j uint64) *inner {
	if j < uint64(len(n.kids)) {
		return n.kids[j]
	}
	return nil
}

func (n *inner) leafAt(j uint64) *leaf {
	if j < uint64(len(n.leaves)) {
		return n.leaves[j]
	}
	return nil
}

// grow makes room for child j, at least doubling so growth is amortised.
func grow[T any](s []*T, j uint64) []*T {
	if j < uint64(len(s)) {
		return s
	}
	n := min(max(2*uint64(len(s)), j+1), 64)
	out := make([]*T, n)
	copy(out, s)
	return out
}

// bitmap is a set of ordinals in [0, size). It is not safe for concurrent
// use; the allocator's mutex guards it.
type bitmap struct {
	size   uint64
	height int    // inner levels above the leaves; 0 means the root is a leaf
	root   *inner // when height > 0
	rleaf  *leaf  // when height == 0
	count  uint64 // number of set ordinals
	// One emptied leaf and inner node are kept for reuse, so a request and
	// release at a node boundary (or serial allocation walking the pool)
	// does not allocate and free a node every time.
	spareLeaf  *leaf
	spareInner *inner
}

// childShift is the log2 of the ordinals a child of a level-l inner node covers.
func childShift(level int) uint { return uint(leafBits + levelBits*(level-1)) }

func newBitmap(size uint64) *bitmap {
	b := &bitmap{size: size}
	if size <= 1<<leafBits {
		b.rleaf = &leaf{}
		return b
	}
	need := bits.Len64(size - 1) // bits of the highest ordinal
	b.height = (need - leafBits + levelBits - 1) / levelBits
	b.root = &inner{}
	// Children of the root that start at or after size never exist: mark
	// them full so searches skip them (and never compute their ordinals,
	// which could overflow for a 2^64 range).
	if n := (size-1)>>childShift(b.height) + 1; n < 64 {
		b.root.full = allOnes << n
	}
	return b
}

func (l *leaf) set(o uint64) bool {
	w, m := (o>>6)&63, uint64(1)<<(o&63)
	if l.words[w]&m != 0 {
		return false
	}
	l.words[w] |= m
	l.used |= 1 << w
	if l.words[w] == allOnes {
		l.full |= 1 << w
	}
	return true
}

func (l *leaf) clear(o uint64) bool {
	w, m := (o>>6)&63, uint64(1)<<(o&63)
	if l.words[w]&m == 0 {
		return false
	}
	l.words[w] &^= m
	l.full &^= 1 << w
	if l.words[w] == 0 {
		l.used &^= 1 << w
	}
	return true
}

func (l *leaf) isSet(o uint64) bool { return l.words[(o>>6)&63]&(1<<(o&63)) != 0 }

// findFree returns the lowest clear in-leaf ordinal >= from (from < 4096).
func (l *leaf) findFree(from uint64) (uint64, bool) {
	w := from >> 6
	if x := ^l.words[w] & (allOnes << (from & 63)); x != 0 {
		return w<<6 | uint64(bits.TrailingZeros64(x)), true
	}
	cand := ^l.full & (allOnes << w << 1) // words after w that are not full
	if cand == 0 {
		return 0, false
	}
	w = uint64(bits.TrailingZeros64(cand))
	return w<<6 | uint64(bits.TrailingZeros64(^l.words[w])), true
}

// findFree returns the lowest clear ordinal >= from within the node's span
// (relative to the node's first ordinal).
func (n *inner) findFree(level int, from uint64) (uint64, bool) {
	shift := childShift(level)
	first := (from >> shift) & 63
	cand := ^n.full & (allOnes << first)
	for cand != 0 {
		j := uint64(bits.TrailingZeros64(cand))
		cand &= cand - 1
		var sub uint64
		if j == first {
			sub = from & (1<<shift - 1)
		}
		base := j << shift
		if level == 1 {
			l := n.leafAt(j)
			if l == nil {
				return base + sub, true
			}
			if r, ok := l.findFree(sub); ok {
				return base + r, true
			}
			continue
		}
		k := n.kid(j)
		if k == nil {
			return base + sub, true
		}
		if r, ok := k.findFree(level-1, sub); ok {
			return base + r, true
		}
	}
	return 0, false
}

// findFree returns the lowest clear ordinal in [from, to).
func (b *bitmap) findFree(from, to uint64) (uint64, bool) {
	if from >= to || from >= b.size {
		return 0, false
	}
	var r uint64
	var ok bool
	if b.height == 0 {
		r, ok = b.rleaf.findFree(from)
	} else {
		r, ok = b.root.findFree(b.height, from)
	}
	if !ok || r >= to || r >= b.size {
		return 0, false
	}
	return r, true
}

// set marks o; it reports false if o was already set.
func (b *bitmap) set(o uint64) bool {
	if b.height == 0 {
		if !b.rleaf.set(o) {
			return false
		}
		b.count++
		return true
	}
	var path [maxHeight + 1]*inner
	var idx [maxHeight + 1]uint64
	n := b.root
	for level := b.height; level > 1; level-- {
		i := (o >> childShift(level)) & 63
		path[level], idx[level] = n, i
		k := n.kid(i)
		if k == nil {
			k = b.spareInner
			if k == nil {
				k = &inner{}
			}
			b.spareInner = nil
			n.kids = grow(n.kids, i)
			n.kids[i] = k
			n.used |= 1 << i
		}
		n = k
	}
	i := (o >> leafBits) & 63
	path[1], idx[1] = n, i
	l := n.leafAt(i)
	if l == nil {
		l = b.spareLeaf
		if l == nil {
			l = &leaf{}
		}
		b.spareLeaf = nil
		n.leaves = grow(n.leaves, i)
		n.leaves[i] = l
		n.used |= 1 << i
	}
	if !l.set(o) {
		return false
	}
	b.count++
	// Propagate fullness upwards while each level becomes full.
	for level, full := 1, l.full == allOnes; full && level <= b.height; level++ {
		p := path[level]
		p.full |= 1 << idx[level]
		full = p.full == allOnes
	}
	return true
}

// clear unmarks o; it reports false if o was not set.
func (b *bitmap) clear(o uint64) bool {
	if b.height == 0 {
		if !b.rleaf.clear(o) {
			return false
		}
		b.count--
		return true
	}
	var path [maxHeight + 1]*inner
	var idx [maxHeight + 1]uint64
	n := b.root
	for level := b.height; level > 1; level-- {
		i := (o >> childShift(level)) & 63
		path[level], idx[level] = n, i
		if n = n.kid(i); n == nil {
			return false
		}
	}
	i := (o >> leafBits) & 63
	path[1], idx[1] = n, i
	l := n.leafAt(i)
	if l == nil || !l.clear(o) {
		return false
	}
	b.count--
	for level := 1; level <= b.height; level++ {
		path[level].full &^= 1 << idx[level]
	}
	// Free nodes that became empty, bottom-up; the root stays.
	if l.used != 0 {
		return true
	}
	// An emptied node is all zero (every word clear, every child slot nil),
	// so it can be reused as is.
	path[1].leaves[idx[1]] = nil
	path[1].used &^= 1 << idx[1]
	b.spareLeaf = l
	for level := 1; level < b.height && path[level].used == 0; level++ {
		p := path[level+1]
		p.kids[idx[level+1]] = nil
		p.used &^= 1 << idx[level+1]
		b.spareInner = path[level]
	}
	return true
}

// isSet reports whether o is set.
func (b *bitmap) isSet(o uint64) bool {
	if b.height == 0 {
		return b.rleaf.isSet(o)
	}
	n := b.root
	for level := b.height; level > 1; level-- {
		if n = n.kid((o >> childShift(level)) & 63); n == nil {
			return false
		}
	}
	l := n.leafAt((o >> leafBits) & 63)
	return l != nil && l.isSet(o)
}

// forEach calls fn for every set ordinal in ascending order.
func (b *bitmap) forEach(fn func(o uint64)) {
	if b.height == 0 {
		b.rleaf.forEach(0, fn)
		return
	}
	b.root.forEach(b.height, 0, fn)
}

func (l *leaf) forEach(base uint64, fn func(uint64)) {
	for u := l.used; u != 0; u &= u - 1 {
		w := uint64(bits.TrailingZeros64(u))
		for x := l.words[w]; x != 0; x &= x - 1 {
			fn(base + w<<6 + uint64(bits.TrailingZeros64(x)))
		}
	}
}

func (n *inner) forEach(level int, base uint64, fn func(uint64)) {
	shift := childShift(level)
	for u := n.used; u != 0; u &= u - 1 {
		j := uint64(bits.TrailingZeros64(u))
		if level == 1 {
			n.leaves[j].forEach(base+j<<shift, fn)
		} else {
			n.kids[j].forEach(level-1, base+j<<shift, fn)
		}
	}
}
