package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

type memoValue struct {
	ID    string
	Cents int64
}

func buildMemoValue(v memoValue) (*Encoded, error) { return Encode(v, time.Second, time.Second) }

func memoBody(enc *Encoded) string {
	w := httptest.NewRecorder()
	enc.Write(w, httptest.NewRequest(http.MethodGet, "/", nil))
	return w.Body.String()
}

// TestMemoServesNoAnswerOfAnotherValueWhateverTheSlotHashes puts every
// slot's hash out of step with its entry, as concurrent fills may leave
// them for a moment: a lookup may then miss, but never answers with what
// another value built.
func TestMemoServesNoAnswerOfAnotherValueWhateverTheSlotHashes(t *testing.T) {
	t.Parallel()
	m := NewComparableMemo(memoWays, 1<<20, MemoOptions[memoValue]{}) // one set: every key shares it
	for i := range memoWays {
		id := fmt.Sprint("p", i)
		if _, err := m.Get(id, memoValue{id, 1}, buildMemoValue); err != nil {
			t.Fatal(err)
		}
	}
	for i := range m.slots {
		m.slots[i].hash.Store(m.slots[(i+1)%len(m.slots)].entry.Load().hash)
	}
	for i := range memoWays {
		id := fmt.Sprint("p", i)
		want := memoValue{id, 2} // changed: no kept answer is right for it
		enc, err := m.Get(id, want, buildMemoValue)
		if err != nil {
			t.Fatal(err)
		}
		if got, wantBody := memoBody(enc), fmt.Sprintf(`{"ID":%q,"Cents":2}`+"\n", id); got != wantBody {
			t.Fatalf("%s answered %q, want %q", id, got, wantBody)
		}
	}
}

// TestMemoAccountsForWhatItHolds fills one small memo from many
// goroutines with more keys than slots and values of changing sizes: what
// it says it holds is what its slots hold, within its budget.
func TestMemoAccountsForWhatItHolds(t *testing.T) {
	t.Parallel()
	const budget = 8 << 10
	m := NewComparableMemo(2*memoWays, budget, MemoOptions[memoValue]{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				id := fmt.Sprint("p", (g*7+i)%23)
				v := memoValue{id, int64(i % 1000 * (g + 1))} // sizes vary with the digits
				enc, err := m.Get(id, v, buildMemoValue)
				if err != nil {
					t.Error(err)
					return
				}
				if got, want := memoBody(enc), fmt.Sprintf(`{"ID":%q,"Cents":%d}`+"\n", id, v.Cents); got != want {
					t.Errorf("got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	var sum int64
	for i := range m.slots {
		if e := m.slots[i].entry.Load(); e != nil {
			sum += e.size
			if m.slots[i].hash.Load() != e.hash {
				t.Errorf("slot %d holds %s under another key's hash", i, e.key)
			}
		}
	}
	if held := m.Held(); held != sum || held > budget || held == 0 {
		t.Fatalf("the memo says it holds %d bytes, its slots hold %d, budget %d", held, sum, budget)
	}
}

// TestMemoFullSetTakesAnotherKeysPlace: a fifth key in a set of four is
// kept in place of one of the others, which is built again when asked
// for, and the bytes held follow.
func TestMemoFullSetTakesAnotherKeysPlace(t *testing.T) {
	t.Parallel()
	m := NewComparableMemo(memoWays, 1<<20, MemoOptions[memoValue]{})
	builds := map[string]int{}
	build := func(v memoValue) (*Encoded, error) {
		builds[v.ID]++
		return buildMemoValue(v)
	}
	for i := range memoWays + 1 {
		id := fmt.Sprint("p", i)
		if _, err := m.Get(id, memoValue{id, 1}, build); err != nil {
			t.Fatal(err)
		}
	}
	kept := 0
	for i := range m.slots {
		if m.slots[i].entry.Load() != nil {
			kept++
		}
	}
	if kept != memoWays {
		t.Fatalf("%d of %d slots filled", kept, memoWays)
	}
	last := fmt.Sprint("p", memoWays)
	if _, err := m.Get(last, memoValue{last, 1}, build); err != nil || builds[last] != 1 {
		t.Fatalf("the fifth key was built %d times (err %v), want once: it was not kept", builds[last], err)
	}
	rebuilt := 0
	for i := range memoWays {
		id := fmt.Sprint("p", i)
		if _, err := m.Get(id, memoValue{id, 1}, build); err != nil {
			t.Fatal(err)
		}
		rebuilt += builds[id] - 1
	}
	if rebuilt == 0 {
		t.Fatal("five keys in four slots, and none was built again")
	}
}

func TestEncodedWriteSetsItsHeadersAndNoneWithoutSurrogateKeys(t *testing.T) {
	t.Parallel()
	enc, err := Encode(memoValue{"p1", 5}, 5*time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	enc.Write(w, httptest.NewRequest(http.MethodGet, "/", nil))
	body := `{"ID":"p1","Cents":5}` + "\n"
	h := w.Result().Header
	if w.Body.String() != body || h.Get("Content-Length") != fmt.Sprint(len(body)) ||
		h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "public, max-age=5, stale-while-revalidate=30" ||
		h.Get("Etag") != ETag([]byte(body[:len(body)-1])) {
		t.Fatalf("answer %q with headers %v", w.Body.String(), h)
	}
	if _, ok := h["Surrogate-Key"]; ok {
		t.Fatalf("Surrogate-Key %q set for an answer without surrogate keys", h.Get("Surrogate-Key"))
	}
	// A later writer adding to a header must not write into the answer
	// kept for the next request.
	w.Header().Add("Cache-Control", "no-transform")
	w.Header().Add("Etag", `"other"`)
	again := httptest.NewRecorder()
	enc.Write(again, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := again.Result().Header.Values("Cache-Control"); len(got) != 1 {
		t.Fatalf("the next answer's Cache-Control is %q", got)
	}
	if got := again.Result().Header.Values("Etag"); len(got) != 1 || got[0] != ETag([]byte(body[:len(body)-1])) {
		t.Fatalf("the next answer's ETag is %q", got)
	}
}

// TestMemoKeepsNoPartOfTheCallersKey: a key cut from a larger string (a
// path value is a part of the request line) is kept as a string of its
// own, or a kept answer would keep the whole request line alive.
func TestMemoKeepsNoPartOfTheCallersKey(t *testing.T) {
	t.Parallel()
	m := NewComparableMemo(memoWays, 1<<20, MemoOptions[memoValue]{})
	line := "GET /v1/products/p1 HTTP/1.1" + strings.Repeat("x", 4096)
	key := line[len("GET /v1/products/"):len("GET /v1/products/p1")]
	if _, err := m.Get(key, memoValue{"p1", 1}, buildMemoValue); err != nil {
		t.Fatal(err)
	}
	for i := range m.slots {
		if e := m.slots[i].entry.Load(); e != nil && unsafe.StringData(e.key) == unsafe.StringData(key) {
			t.Fatal("the kept entry's key is the caller's string, a part of the request line")
		}
	}
}

// TestMemoTakesTheValueItIsGivenOnceWhenNotTheSame: after the cache
// reloads an entry, the value read is equal to the kept one but another
// copy; the memo keeps the new copy once (later hits compare pointers, the
// old one is freed), with the same answer and size.
func TestMemoTakesTheValueItIsGivenOnceWhenNotTheSame(t *testing.T) {
	t.Parallel()
	same := func(a, b memoValue) bool { return unsafe.StringData(a.ID) == unsafe.StringData(b.ID) }
	m := NewComparableMemo(memoWays, 1<<20, MemoOptions[memoValue]{Same: same})
	loaded := memoValue{strings.Clone("p1"), 1}
	first, err := m.Get("p1", loaded, buildMemoValue)
	if err != nil {
		t.Fatal(err)
	}
	held := m.Held()
	kept := func() *memoEntry[memoValue] {
		for i := range m.slots {
			if e := m.slots[i].entry.Load(); e != nil {
				return e
			}
		}
		t.Fatal("nothing kept")
		return nil
	}
	reloaded := memoValue{strings.Clone("p1"), 1}
	again, err := m.Get("p1", reloaded, buildMemoValue)
	if err != nil {
		t.Fatal(err)
	}
	e := kept()
	if memoBody(again) != memoBody(first) || !same(e.value, reloaded) || m.Held() != held {
		t.Fatalf("after an equal copy: same answer %v, kept the copy %v, held %d then %d",
			memoBody(again) == memoBody(first), same(e.value, reloaded), held, m.Held())
	}
	if _, err := m.Get("p1", reloaded, buildMemoValue); err != nil {
		t.Fatal(err)
	}
	if kept() != e {
		t.Fatal("a hit with the kept value itself replaced the entry")
	}
}
