package e2e

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// searchWord returns a made-up word no other product contains. It has only
// consonants other than s and y, so the stemmer leaves it as it is and it
// isolates a test's products even on a shared target.
func searchWord() string {
	const letters = "bcdfghjklmnpqrtvwxz"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "zq" + string(b)
}

// searchProduct creates a product with the given name and description.
func searchProduct(t testing.TB, admin *Session, category, name, description string) catalogProduct {
	t.Helper()
	body := catalogValidProduct(category)
	body["name"], body["description"] = name, description
	return catalogCreate(t, admin, body)
}

// searchFor returns the first page of results for q.
func searchFor(t testing.TB, c *Client, q string) catalogPage {
	t.Helper()
	r := c.Expect(t, http.StatusOK, "GET", "/v1/search?q="+url.QueryEscape(q), nil)
	var raw struct {
		Items []json.RawMessage `json:"items"`
	}
	r.Decode(t, &raw)
	if raw.Items == nil {
		t.Fatalf("search %q: items is not an array: %s", q, r.Body)
	}
	for _, item := range raw.Items {
		catalogCheckShape(t, item)
	}
	var page catalogPage
	r.Decode(t, &page)
	return page
}

// searchIDs returns the IDs of items, in order.
func searchIDs(items []catalogProduct) []string {
	out := make([]string, len(items))
	for i, p := range items {
		out[i] = p.ID
	}
	return out
}

// searchLag bounds how long a catalog write may take to reach the search
// index: the outbox relays the write's event after commit, and the "search"
// consumer applies it.
const searchLag = 5 * time.Second

// searchAwait waits, up to searchLag, until q finds exactly the given
// products (in any order), and returns how long that took. Search follows
// the catalog through events, so a write is searchable shortly after it
// returns, not at once; tests wait for it here and then assert as before.
func searchAwait(t testing.TB, c *Client, q string, want ...catalogProduct) time.Duration {
	t.Helper()
	wantIDs := searchIDs(want)
	slices.Sort(wantIDs)
	start := time.Now()
	for {
		got := searchIDs(searchFor(t, c, q).Items)
		slices.Sort(got)
		if slices.Equal(got, wantIDs) {
			return time.Since(start)
		}
		if time.Since(start) > searchLag {
			t.Fatalf("search %q still finds %v after %s, want %v", q, got, searchLag, wantIDs)
		}
		time.Sleep(time.Millisecond)
	}
}

// searchWantIDs fails unless q finds exactly the given products (in any order).
func searchWantIDs(t testing.TB, c *Client, q string, want ...catalogProduct) {
	t.Helper()
	got := searchIDs(searchFor(t, c, q).Items)
	wantIDs := searchIDs(want)
	slices.Sort(got)
	slices.Sort(wantIDs)
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("search %q found %v, want %v", q, got, wantIDs)
	}
}

func TestSearchRanking(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	w := searchWord()

	// Description-only hits are created first and repeat the word, so that
	// neither creation order nor term frequency can put them on top.
	descOnly := []catalogProduct{
		searchProduct(t, admin, cat, "Camp Stool", "Folding stool, "+w+" "+w+" "+w+" edition, "+w+" frame."),
		searchProduct(t, admin, cat, "Tarp", "Pairs with the "+w+"."),
	}
	inName := []catalogProduct{
		searchProduct(t, admin, cat, w+" Tent", "Sleeps two."),
		searchProduct(t, admin, cat, "Ultralight "+w+" Tent Footprint and Stakes Kit", "Protects the floor of your tent."),
	}
	searchProduct(t, admin, cat, "Unrelated Stove", "Boils water fast.")
	searchAwait(t, anon, w, append(slices.Clone(inName), descOnly...)...)

	page := searchFor(t, anon, w)
	if len(page.Items) != 4 {
		t.Fatalf("search %q found %d products, want 4: %+v", w, len(page.Items), page.Items)
	}
	for i, p := range page.Items {
		isName := slices.ContainsFunc(inName, func(q catalogProduct) bool { return q.ID == p.ID })
		if (i < 2) != isName {
			t.Fatalf("rank %d is %q; every name match must rank above every description-only match", i, p.Name)
		}
	}

	// Matching is case-insensitive.
	searchWantIDs(t, anon, strings.ToUpper(w), append(slices.Clone(inName), descOnly...)...)
}

func TestSearchMatching(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	w := searchWord()

	boot := searchProduct(t, admin, cat, "Rugged Leather Hiking Boot "+w, "Waterproof and warm.")
	redChair := searchProduct(t, admin, cat, "Red Camp Chair "+w, "Folds flat.")
	blueChair := searchProduct(t, admin, cat, "Blue Camp Chair "+w, "Folds flat, reddish trim.")
	cafe := searchProduct(t, admin, cat, "Café Press "+w, "Brews coffee outdoors.")
	searchAwait(t, anon, w, boot, redChair, blueChair, cafe)

	for _, tc := range []struct {
		name string
		q    string
		want []catalogProduct
	}{
		{"plural finds singular", "boots " + w, []catalogProduct{boot}},
		{"inflection finds stem", "hiked " + w, []catalogProduct{boot}},
		{"prefix of the last word", w + " hik", []catalogProduct{boot}},
		{"prefix of the last word, one letter", w + " h", []catalogProduct{boot}},
		{"prefix longer than the stem", w + " hiki", []catalogProduct{boot}},
		{"prefix one letter short", w + " hikin", []catalogProduct{boot}},
		{"prefix of a word with a diacritic", w + " caf", []catalogProduct{cafe}},
		{"prefix that is no word", w + " hikx", nil},
		{"prefix of the only word", w[:len(w)-3], []catalogProduct{boot, redChair, blueChair, cafe}},
		{"words are ANDed", "red camp " + w, []catalogProduct{redChair}},
		{"AND across name and description", "blue reddish " + w, []catalogProduct{blueChair}},
		{"word order does not matter", w + " chair camp", []catalogProduct{redChair, blueChair}},
		{"only the last word is a prefix", "hik " + w, nil},
		{"a word in no product", w + " kayak", nil},
		{"diacritics folded in the query", "cafe " + w, []catalogProduct{cafe}},
		{"diacritics folded in the index", "café " + w, []catalogProduct{cafe}},
		{"punctuation separates words", w + "...boot!", []catalogProduct{boot}},
	} {
		got := searchIDs(searchFor(t, anon, tc.q).Items)
		want := searchIDs(tc.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: search %q found %v, want %v", tc.name, tc.q, got, want)
		}
	}
}

func TestSearchHostileQueries(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	w := searchWord()
	p := searchProduct(t, admin, cat, "Hiking Boot "+w, "Leather.")
	searchAwait(t, anon, w, p)

	// FTS5 query syntax must be taken as text: never a 5xx, never an error.
	for _, q := range []string{
		`"`, `""`, `"unterminated`, `*`, `boot*`, `OR`, `a OR b`, `AND`, `NOT`, `NOT boot`, `NEAR(`, `NEAR(boot hiking, 2)`,
		`-`, `-boot`, `boot -`, `+`, `^boot`, `name:boot`, `{name description}:boot`, `(`, `)`, `((boot)`, `'`,
		`\`, `%`, `_`, `;`, `' OR 1=1 --`, `); DROP TABLE products; --`, `:`, `.`, `,`, `*:*`,
		"日本語", "Ελληνικά", "שלום", "e\u0301", "\u200b", "\u200d", "\ufeffboot", "🥾", "👨‍👩‍👧", "🥾 boot",
		"𞤀𞤁", "ǅ", "\x00", "\x01boot", "x\ny", strings.Repeat("a ", 100), strings.Repeat("é", 200),
		strings.Repeat("z", 200),
	} {
		r := anon.Do(t, "GET", "/v1/search?q="+url.QueryEscape(q), nil)
		if r.Status != http.StatusOK {
			t.Errorf("search %q: status %d, want 200; body %s", q, r.Status, r.Body)
			continue
		}
		var page catalogPage
		r.Decode(t, &page)
		if page.Items == nil {
			t.Errorf("search %q: items is not an array: %s", q, r.Body)
		}
	}

	// Operators around real words neither break nor widen the search.
	for _, q := range []string{`"` + w + `"`, w + `*`, `-` + w, `(` + w + `)`, `(` + w + `))`, w + ` "boot"`, w + `:`, `🥾 ` + w} {
		searchWantIDs(t, anon, q, p)
	}
	searchWantIDs(t, anon, w+" OR kayak")

	for _, tc := range []struct{ name, raw string }{
		{"missing q", ""},
		{"empty q", "q="},
		{"whitespace q", "q=" + url.QueryEscape(" \t\n ")},
		{"q over 200 characters", "q=" + strings.Repeat("z", 201)},
		{"q over 200 multibyte characters", "q=" + url.QueryEscape(strings.Repeat("é", 201))},
		{"q that is not UTF-8", "q=%FF%FE"},
		{"repeated q", "q=boot&q=tent"},
		{"limit 0", "q=boot&limit=0"},
		{"limit 101", "q=boot&limit=101"},
		{"limit abc", "q=boot&limit=abc"},
		{"garbage cursor", "q=boot&cursor=garbage"},
		{"empty cursor", "q=boot&cursor="},
	} {
		r := anon.Do(t, "GET", "/v1/search?"+tc.raw, nil)
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400; body %s", tc.name, r.Status, r.Body)
			continue
		}
		CheckProblem(t, r, http.StatusBadRequest)
	}
}

func TestSearchPagination(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	w := searchWord()

	const n = 7
	want := map[string]bool{}
	var created []catalogProduct
	for i := range n {
		p := searchProduct(t, admin, cat, "Paged "+w+" item "+string(rune('a'+i)), "Listed in pages.")
		want[p.ID] = true
		created = append(created, p)
	}
	searchAwait(t, anon, w, created...)
	items := catalogWalk(t, anon, "/v1/search?q="+w, 3)
	if len(items) != n {
		t.Fatalf("walked %d results, want %d", len(items), n)
	}
	seen := map[string]bool{}
	for _, p := range items {
		if !want[p.ID] || seen[p.ID] {
			t.Fatalf("result %s is unknown or repeated; walked %v", p.ID, searchIDs(items))
		}
		seen[p.ID] = true
	}
	if one := catalogWalk(t, anon, "/v1/search?q="+w, 100); !slices.Equal(searchIDs(one), searchIDs(items)) {
		t.Fatalf("paged order %v differs from the single-page order %v", searchIDs(items), searchIDs(one))
	}
}

func TestSearchFollowsCatalogWrites(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	oldWord, newWord, descWord := searchWord(), searchWord(), searchWord()

	p := searchProduct(t, admin, cat, "Lantern "+oldWord, "Bright.")
	searchAwait(t, anon, oldWord, p)

	// A rename reaches the index as one document change: the new name
	// matches and the old one stops matching.
	admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"name": "Lantern " + newWord})
	searchAwait(t, anon, newWord, p)
	searchAwait(t, anon, oldWord)
	if got := searchFor(t, anon, newWord).Items[0].Name; got != "Lantern "+newWord {
		t.Fatalf("search shows name %q, want the new one", got)
	}

	admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"description": "Now " + descWord + "."})
	searchAwait(t, anon, descWord, p)
	searchWantIDs(t, anon, newWord, p)

	// A PATCH that touches neither name nor description keeps the product
	// findable, and results show the current price.
	admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"price_cents": 777})
	if got := searchFor(t, anon, newWord).Items; len(got) != 1 || got[0].PriceCents != 777 {
		t.Fatalf("after a price change search shows %+v, want the product at 777", got)
	}

	admin.Expect(t, http.StatusNoContent, "DELETE", "/v1/products/"+p.ID, nil)
	searchWantIDs(t, anon, newWord)
	searchWantIDs(t, anon, descWord)

	// The index does not keep ghosts that would eat a page: a fresh product
	// with the word is the only result and there is no further page.
	q := searchProduct(t, admin, cat, "Lantern "+newWord, "Reissued.")
	// The consumer applies events in the order they were recorded, so the
	// deletion is applied once the new product is found.
	searchAwait(t, anon, newWord, q)
	page := searchFor(t, anon, newWord)
	if len(page.Items) != 1 || page.Items[0].ID != q.ID || page.NextCursor != nil {
		t.Fatalf("after delete and recreate search answers %+v", page)
	}
	// Results hide products the catalog no longer has, so only a page of
	// one shows whether the deleted product's document is still indexed:
	// it would be a second hit, and a next page.
	var one catalogPage
	anon.Expect(t, http.StatusOK, "GET", "/v1/search?limit=1&q="+newWord, nil).Decode(t, &one)
	if len(one.Items) != 1 || one.Items[0].ID != q.ID || one.NextCursor != nil {
		t.Fatalf("after delete and recreate a page of one answers %+v; the deleted product is still indexed", one)
	}
}

// TestSearchIndexLag measures how long a created product takes to become
// searchable (commit, outbox relay, the "search" consumer, then a search
// request), and fails if any takes longer than searchLag.
func TestSearchIndexLag(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	const n = 20
	lags := make([]time.Duration, n)
	for i := range lags {
		w := searchWord()
		p := searchProduct(t, admin, cat, "Lag "+w, "Measured.")
		lags[i] = searchAwait(t, anon, w, p)
	}
	slices.Sort(lags)
	t.Logf("create to searchable over %d products: median %s, max %s (polled every 1 ms)", n, lags[n/2], lags[n-1])
}
