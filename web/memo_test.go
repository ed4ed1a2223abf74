package web_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/web"
)

type price struct {
	ID    string
	Cents int64
}

func TestMemoReusesOnlyForAnEqualValue(t *testing.T) {
	t.Parallel()
	memo := web.NewComparableMemo(4, 1<<20, web.MemoOptions[price]{})
	builds := 0
	build := func(p price) (*web.Encoded, error) {
		builds++
		return web.Encode(p, time.Second, time.Second, "product-"+p.ID)
	}
	body := func(enc *web.Encoded) string {
		w := httptest.NewRecorder()
		enc.Write(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w.Body.String()
	}
	first, err := memo.Get("p1", price{"p1", 100}, build)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := memo.Get("p1", price{"p1", 100}, build)
	if again != first || builds != 1 {
		t.Fatalf("an equal value was encoded again (builds %d)", builds)
	}
	changed, _ := memo.Get("p1", price{"p1", 101}, build)
	if builds != 2 || body(changed) != `{"ID":"p1","Cents":101}`+"\n" {
		t.Fatalf("a changed value got %q after %d builds", body(changed), builds)
	}
	// Every key shares one of four slots with others: whatever evicted
	// what, each answer is its own key's value.
	for i := range 64 {
		id := fmt.Sprint("p", i%8)
		enc, err := memo.Get(id, price{id, int64(i % 8)}, build)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"ID":%q,"Cents":%d}`+"\n", id, i%8); body(enc) != want {
			t.Fatalf("key %s answered %q, want %q", id, body(enc), want)
		}
	}
}

func TestMemoDoesNotKeepAFailedBuild(t *testing.T) {
	t.Parallel()
	memo := web.NewComparableMemo(1, 1<<20, web.MemoOptions[price]{})
	boom := errors.New("boom")
	if _, err := memo.Get("p1", price{"p1", 1}, func(price) (*web.Encoded, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	built := false
	if _, err := memo.Get("p1", price{"p1", 1}, func(p price) (*web.Encoded, error) {
		built = true
		return web.Encode(p, time.Second, time.Second)
	}); err != nil || !built {
		t.Fatalf("after a failed build: built %v, err %v", built, err)
	}
}

func TestMemoConcurrentReadersSeeTheirOwnValue(t *testing.T) {
	t.Parallel()
	memo := web.NewComparableMemo(2, 1<<20, web.MemoOptions[price]{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				v := price{fmt.Sprint("p", (g+i)%5), int64(i % 3)}
				enc, err := memo.Get(v.ID, v, func(p price) (*web.Encoded, error) { return web.Encode(p, time.Second, time.Second) })
				if err != nil {
					t.Error(err)
					return
				}
				w := httptest.NewRecorder()
				enc.Write(w, httptest.NewRequest(http.MethodGet, "/", nil))
				if want := fmt.Sprintf(`{"ID":%q,"Cents":%d}`+"\n", v.ID, v.Cents); w.Body.String() != want {
					t.Errorf("got %q, want %q", w.Body.String(), want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestMemoKeepsNoMoreThanItsBudget(t *testing.T) {
	t.Parallel()
	// Room for about two answers, of the size one takes.
	probe := web.NewComparableMemo(64, 1<<20, web.MemoOptions[price]{})
	if _, err := probe.Get("p0", price{"p0", 1}, func(p price) (*web.Encoded, error) {
		return web.Encode(p, time.Second, time.Second)
	}); err != nil {
		t.Fatal(err)
	}
	budget := probe.Held() * 5 / 2
	memo := web.NewComparableMemo(64, budget, web.MemoOptions[price]{})
	builds := 0
	build := func(p price) (*web.Encoded, error) {
		builds++
		return web.Encode(p, time.Second, time.Second)
	}
	for i := range 10 {
		id := fmt.Sprint("p", i)
		if _, err := memo.Get(id, price{id, 1}, build); err != nil {
			t.Fatal(err)
		}
	}
	if held := memo.Held(); held > budget || held == 0 {
		t.Fatalf("the memo holds %d bytes with a budget of %d", held, budget)
	}
	builds = 0
	for i := range 10 {
		id := fmt.Sprint("p", i)
		if _, err := memo.Get(id, price{id, 1}, build); err != nil {
			t.Fatal(err)
		}
	}
	if builds < 8 {
		t.Fatalf("only %d of 10 answers were built again: the memo kept more than its budget", builds)
	}
	// A changed value replaces its key's answer even at the budget.
	first, _ := memo.Get("p0", price{"p0", 2}, build)
	again, _ := memo.Get("p0", price{"p0", 2}, build)
	if first != again {
		t.Fatal("a replaced answer of the same size was not kept at the budget")
	}
}
