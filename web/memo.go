package web

import (
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
	slots     []memoSlot[V]
	mask      uint64
	equal     func(a, b V) bool
	valueSize func(V) int64
	budget    int64
	held      atomic.Int64
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
// bytes, that compares values with equal. valueSize, if not nil, tells
// what a value holds that the memo alone keeps alive (say, a list's array
// built for the request); values read from one cache share their strings
// with it, so comparing them mostly compares pointers and keeping them
// costs little.
func NewMemo[V any](slots int, budget int64, equal func(a, b V) bool, valueSize func(V) int64) *Memo[V] {
	n := memoWays
	for n < slots {
		n <<= 1
	}
	return &Memo[V]{slots: make([]memoSlot[V], n), mask: uint64(n - 1), equal: equal, valueSize: valueSize, budget: budget}
}

// NewComparableMemo is NewMemo for a value type Go can compare with ==
// and whose memory the memo need not count.
func NewComparableMemo[V comparable](slots int, budget int64) *Memo[V] {
	return NewMemo(slots, budget, func(a, b V) bool { return a == b }, nil)
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
			return &e.encoded, nil
		}
		if e.hash == h && e.key == key {
			own = i
			break
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
	e := &memoEntry[V]{hash: h, key: key, value: value, encoded: *enc}
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

// sizeOf is about the bytes e holds: its own (the value's fields, the
// answer's header values), its key's and answer's, and what valueSize
// counts of its value.
func (m *Memo[V]) sizeOf(e *memoEntry[V]) int64 {
	n := int64(unsafe.Sizeof(*e)) + int64(len(e.key)+len(e.encoded.body))
	for _, v := range e.encoded.values {
		n += int64(len(v))
	}
	if m.valueSize != nil {
		n += m.valueSize(e.value)
	}
	return n
}

// Held is about how many bytes the kept answers take.
func (m *Memo[V]) Held() int64 { return m.held.Load() }
