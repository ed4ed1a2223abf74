package web

import (
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Memo keeps the Encoded answer of the last value seen under each key, so
// that the next request for an unchanged value reuses it. It holds no
// truth of its own: every lookup passes the value just read (from the
// cache or the database) and gets an answer built from exactly that
// value; an entry whose value differs is rebuilt. It is a fixed array of
// slots indexed by a hash of the key, so that a lookup takes no lock and
// needs no eviction bookkeeping (two keys sharing a slot only cost
// re-encodings), and the bytes its answers hold are bounded: past the
// budget, new answers are served without being kept.
type Memo[V any] struct {
	slots  []atomic.Pointer[memoEntry[V]]
	mask   uint64
	equal  func(a, b V) bool
	budget int64
	held   atomic.Int64
}

type memoEntry[V any] struct {
	key     string
	value   V
	encoded *Encoded
	size    int64
}

// memoEntryOverhead approximates what an entry holds besides its body and
// key: the value's fields and the answer's header strings.
const memoEntryOverhead = 512

// NewMemo returns a memo of at least slots slots (rounded up to a power of
// two) holding answers of up to about budget bytes, that compares values
// with equal. Values read from one cache share their strings, so comparing
// them mostly compares pointers.
func NewMemo[V any](slots int, budget int64, equal func(a, b V) bool) *Memo[V] {
	n := 1
	for n < slots {
		n <<= 1
	}
	return &Memo[V]{slots: make([]atomic.Pointer[memoEntry[V]], n), mask: uint64(n - 1), equal: equal, budget: budget}
}

// NewComparableMemo is NewMemo for a value type Go can compare with ==.
func NewComparableMemo[V comparable](slots int, budget int64) *Memo[V] {
	return NewMemo(slots, budget, func(a, b V) bool { return a == b })
}

// Get returns the answer for value under key: the memo's when it was built
// from an equal value, otherwise build's, which the memo then keeps if its
// budget allows. A key has two candidate slots (from the two halves of its
// hash), which keeps most keys in even when the slots are well filled.
func (m *Memo[V]) Get(key string, value V, build func(V) (*Encoded, error)) (*Encoded, error) {
	h := xxhash.Sum64String(key)
	first, second := &m.slots[h&m.mask], &m.slots[(h>>32)&m.mask]
	a, b := first.Load(), second.Load()
	for _, e := range [2]*memoEntry[V]{a, b} {
		if e != nil && e.key == key {
			if m.equal(e.value, value) {
				return e.encoded, nil
			}
		}
	}
	enc, err := build(value)
	if err != nil {
		return nil, err
	}
	// The slot to fill: the key's own (a new version), else an empty one,
	// else the first.
	slot, old := first, a
	switch {
	case a != nil && a.key == key:
	case b != nil && b.key == key, a != nil && b == nil:
		slot, old = second, b
	}
	e := &memoEntry[V]{key: key, value: value, encoded: enc, size: int64(len(enc.body)+len(key)) + memoEntryOverhead}
	grow := e.size
	if old != nil {
		grow -= old.size
	}
	if grow > 0 && m.held.Load()+grow > m.budget {
		return enc, nil
	}
	if slot.CompareAndSwap(old, e) {
		m.held.Add(grow)
	}
	return enc, nil
}

// Held is about how many bytes the kept answers take.
func (m *Memo[V]) Held() int64 { return m.held.Load() }
