package web

import (
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Memo keeps the Encoded answer of the last value seen under each key, so
// that the next request for an unchanged value reuses it. It holds no
// truth of its own: every lookup passes the value just read (from the
// cache or the database) and gets an answer built from an equal value.
// An answer must therefore depend on its value alone, not on its key: a
// value that an answer depends on (a list page's category, say) belongs
// in the value. The memo is a fixed array of slots indexed by a hash of
// the key, so that a lookup takes no lock and needs no eviction
// bookkeeping (keys sharing slots only cost re-encodings), and the bytes
// its answers hold are bounded: past the budget, new answers are served
// without being kept.
//
// A key may take any of the memoWays slots of its set, which share one CPU
// cache line, and each slot carries the hash of its entry's key: a lookup
// reads one line of slots and then only the entry that is likely its own,
// whose value decides. Over a large catalogue each further allocation a
// lookup reaches is a likely cache and TLB miss, and so the key, which
// lies in an allocation of its own, is not compared on a hit.
type Memo[V any] struct {
	slots  []memoSlot[V]
	mask   uint64
	equal  func(a, b V) bool
	opts   MemoOptions[V]
	budget int64
	held   atomic.Int64
}

// MemoOptions are a Memo's optional knowledge of its values.
type MemoOptions[V any] struct {
	// ValueSize tells what a value holds that the memo alone keeps alive
	// (say, a list's array built for the request), for the budget.
	ValueSize func(V) int64
	// Same reports whether two equal values share their memory: read from
	// one cache entry, their strings are the same. Comparing those is
	// comparing pointers; comparing equal copies reads both. A hit with an
	// equal value that is not the same one keeps that value instead, once:
	// after the cache reloads an entry (its lifetime ended), later hits
	// compare pointers again and the old copy is freed. Nil: never.
	Same func(a, b V) bool
}

// memoWays is how many slots a key may take: four slots of 16 bytes fill
// one 64-byte cache line.
const memoWays = 4

// memoSlot is an entry and the hash of its key, a hint of which entry to
// read: the two are stored one after the other, so a reader may see them
// out of step, and then it reads an entry whose value is not equal, or
// misses.
type memoSlot[V any] struct {
	hash  atomic.Uint64
	entry atomic.Pointer[memoEntry[V]]
}

type memoEntry[V any] struct {
	hash    uint64 // of key
	key     string
	value   V
	encoded Encoded // in the entry's allocation: one read less per lookup
	size    int64
}

// NewMemo returns a memo of at least slots slots (rounded up to a power of
// two, and to at least one set) holding answers of up to about budget
// bytes, that compares values with equal.
func NewMemo[V any](slots int, budget int64, equal func(a, b V) bool, opts MemoOptions[V]) *Memo[V] {
	n := memoWays
	for n < slots {
		n <<= 1
	}
	return &Memo[V]{slots: make([]memoSlot[V], n), mask: uint64(n - 1), equal: equal, opts: opts, budget: budget}
}

// NewComparableMemo is NewMemo for a value type Go can compare with ==.
func NewComparableMemo[V comparable](slots int, budget int64, opts MemoOptions[V]) *Memo[V] {
	return NewMemo(slots, budget, func(a, b V) bool { return a == b }, opts)
}

// Get returns the answer for value under key: the memo's when it was built
// from an equal value, otherwise build's, which the memo then keeps if its
// budget allows.
func (m *Memo[V]) Get(key string, value V, build func(V) (*Encoded, error)) (*Encoded, error) {
	h := xxhash.Sum64String(key)
	set := m.slots[h&m.mask&^(memoWays-1):][:memoWays]
	own := -1 // the slot holding key, if any
	for i := range set {
		if set[i].hash.Load() != h {
			continue
		}
		e := set[i].entry.Load()
		if e == nil {
			continue
		}
		if m.equal(e.value, value) {
			if m.opts.Same != nil && !m.opts.Same(e.value, value) {
				m.keepValue(&set[i], e, value)
			}
			return &e.encoded, nil
		}
		if own < 0 && e.hash == h && e.key == key {
			own = i // a racing fill may have left a second copy: look on
		}
	}
	enc, err := build(value)
	if err != nil {
		return nil, err
	}
	// The slot to fill: the key's own (a new version), else an empty one,
	// else one picked by the hash's high bits.
	slot := own
	if slot < 0 {
		slot = int(h>>32) % memoWays
		for i := range set {
			if set[i].entry.Load() == nil {
				slot = i
				break
			}
		}
	}
	old := set[slot].entry.Load()
	// The key is kept as a string of its own: the caller's may be a part
	// of the request line (a path value), which it would keep alive.
	e := &memoEntry[V]{hash: h, key: strings.Clone(key), value: value, encoded: *enc}
	e.size = m.sizeOf(e)
	grow := e.size
	if old != nil {
		grow -= old.size
	}
	if grow > 0 && m.held.Load()+grow > m.budget {
		return enc, nil
	}
	if set[slot].entry.CompareAndSwap(old, e) {
		m.held.Add(grow)
		// Concurrent fills of one slot may store their hashes in another
		// order than their entries: store the hash of the entry the slot
		// holds once the stores are done.
		for {
			cur := set[slot].entry.Load()
			if cur == nil {
				break
			}
			set[slot].hash.Store(cur.hash)
			if set[slot].entry.Load() == cur {
				break
			}
		}
	}
	return &e.encoded, nil
}

// keepValue replaces e, in slot, by a copy holding value, which is equal
// to e's and the same size; if another fill got there first, that one
// stays.
func (m *Memo[V]) keepValue(slot *memoSlot[V], e *memoEntry[V], value V) {
	kept := *e
	kept.value = value
	slot.entry.CompareAndSwap(e, &kept)
}

// sizeOf is about the bytes e holds: its own (the value's fields, the
// answer's header values), its key's and answer's, and what valueSize
// counts of its value.
func (m *Memo[V]) sizeOf(e *memoEntry[V]) int64 {
	n := int64(unsafe.Sizeof(*e)) + int64(len(e.key)+len(e.encoded.body))
	for _, v := range e.encoded.values {
		n += int64(len(v))
	}
	if m.opts.ValueSize != nil {
		n += m.opts.ValueSize(e.value)
	}
	return n
}

// Held is about how many bytes the kept answers take.
func (m *Memo[V]) Held() int64 { return m.held.Load() }
