// Package storetest is the contract every search.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (search/store runs it on SQLite FTS5 and on PostgreSQL full-text search),
// so a new backend is done when Run passes on it. The engines' full-text
// features differ (tokenizers, stemmers, rank functions); this suite pins
// down what the shop relies on, so a query finds the same products in the
// same order of relevance on either.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/millionshop/million/search"
)

// PrefixDocuments is how many documents the paging test indexes under one
// prefix. An engine that expands a prefix into at most so many words must
// expand into fewer, so the test covers documents found through the prefix
// alone.
const PrefixDocuments = 100

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) search.Store) {
	t.Helper()

	setup := func(t *testing.T) (search.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("EmptyIndexMatchesNothing", func(t *testing.T) {
		s, ctx := setup(t)
		for _, terms := range [][]string{{"boot"}, {"b"}, {"hiking", "boot"}} {
			if ids, err := s.Match(ctx, terms, 0, 10); err != nil || len(ids) != 0 {
				t.Errorf("Match(%q) on an empty index = %v, %v; want nothing", terms, ids, err)
			}
		}
	})

	t.Run("MatchWordsPrefixesAndStems", func(t *testing.T) {
		s, _ := setup(t)
		upsert(t, s, "boot", "Rugged Leather Hiking Boot", "Waterproof, for mountains.")
		upsert(t, s, "boots", "Rain Boots", "Rubber, knee high.")
		upsert(t, s, "chair", "Red Camp Chair", "Folds flat; pairs with a hiking table.")
		upsert(t, s, "cafe", "Café Press", "Brews coffee.")
		upsert(t, s, "plain", "Cafe Mug", "Holds coffee.")
		upsert(t, s, "using", "Kit", "Using it is easy.")
		upsert(t, s, "guide", "The Trail Guide", "Maps of 40 routes.")
		upsert(t, s, "map", "Trail Map", "Folded paper.")
		upsert(t, s, "greek", "Ελληνικό Βιβλίο", "Μαγειρική.")
		for _, tc := range []struct {
			q    string
			want []string
		}{
			// Whole words, in the name or in the description.
			{"boot", []string{"boot", "boots"}},
			{"mountains", []string{"boot"}},
			{"rubber", []string{"boots"}},
			// Stemming both ways: "boots" finds "Boot", "boot" finds "Boots".
			{"boots", []string{"boot", "boots"}},
			{"booted", []string{"boot", "boots"}},
			{"mountain", []string{"boot"}},
			{"brew", []string{"cafe"}},
			// The last term is also a prefix: of a stem ("hik" of "hike")
			// and of a whole word ("hikin" of "hiking"), for search as you
			// type.
			{"h", []string{"boot", "chair", "boots", "plain"}}, // "high", "holds"
			{"hik", []string{"boot", "chair"}},
			{"hiki", []string{"boot", "chair"}},
			{"hikin", []string{"boot", "chair"}},
			{"hiking", []string{"boot", "chair"}},
			{"hikings", []string{"boot", "chair"}},
			{"usi", []string{"using"}},
			{"hikx", nil},
			{"bootz", nil},
			// Every term must match: an AND, with only the last a prefix.
			{"hikin boot", nil},
			{"boot hikin", []string{"boot"}},
			{"red hikin", []string{"chair"}},
			{"boots leather", []string{"boot"}},
			{"leather rubber", nil},
			{"coffee brew", []string{"cafe"}},
			{"mountain waterproof leather", []string{"boot"}},
			// A common word is a word like any other, never dropped from
			// the query.
			{"the trail", []string{"guide"}},
			{"trail the", []string{"guide"}},
			{"trail", []string{"guide", "map"}},
			// Numbers are words.
			{"40", []string{"guide"}},
			{"40 routes", []string{"guide"}},
			// Diacritics fold both ways.
			{"cafe", []string{"cafe", "plain"}},
			{"café", []string{"cafe", "plain"}},
			{"caf", []string{"cafe", "plain"}},
			// Letters beyond ASCII fold case too.
			{"ελληνικό", []string{"greek"}},
			{"ελλην", []string{"greek"}},
			{"βιβλίο ελληνικό", []string{"greek"}},
		} {
			if got := sorted(match(t, s, tc.q)); !slices.Equal(got, sorted(tc.want)) {
				t.Errorf("match %q = %v, want %v", tc.q, got, sorted(tc.want))
			}
		}
	})

	t.Run("OlderWritesChangeNothing", func(t *testing.T) {
		s, ctx := setup(t)
		upsert(t, s, "other", "Kettle Stand", "Steel.")
		write := func(what string, wrote bool, err error, want bool) {
			t.Helper()
			if err != nil || wrote != want {
				t.Fatalf("%s = %v, %v; want %v", what, wrote, err, want)
			}
		}
		wantMatch := func(q string, want ...string) {
			t.Helper()
			if got := sorted(match(t, s, q)); !slices.Equal(got, sorted(want)) {
				t.Fatalf("match %q = %v, want %v", q, got, want)
			}
		}
		up := func(version int64, name string) (bool, error) {
			return s.Upsert(ctx, "p", version, name, "Boils water.")
		}

		wrote, err := up(5, "Alpha Kettle")
		write("Upsert v5", wrote, err, true)
		// Redelivered, or delivered after a newer one: ignored.
		wrote, err = up(5, "Gamma Kettle")
		write("Upsert v5 again", wrote, err, false)
		wrote, err = up(3, "Beta Kettle")
		write("Upsert v3 after v5", wrote, err, false)
		wantMatch("alpha", "p")
		wantMatch("beta")
		wantMatch("gamma")
		wantMatch("kettle", "p", "other")

		wrote, err = up(6, "Delta Kettle")
		write("Upsert v6", wrote, err, true)
		wantMatch("alpha")
		wantMatch("delta", "p")

		// A deletion older than the document leaves it; a newer one
		// removes it, and no older update brings it back.
		wrote, err = s.Delete(ctx, "p", 4)
		write("Delete v4 after v6", wrote, err, false)
		wantMatch("delta", "p")
		wrote, err = s.Delete(ctx, "p", 7)
		write("Delete v7", wrote, err, true)
		wrote, err = s.Delete(ctx, "p", 7)
		write("Delete v7 again", wrote, err, false)
		wrote, err = up(6, "Delta Kettle")
		write("Upsert v6 after the deletion", wrote, err, false)
		wantMatch("delta")
		wantMatch("kettle", "other")

		// A deletion that arrives before the product's creation wins too.
		wrote, err = s.Delete(ctx, "q", 2)
		write("Delete q v2 first", wrote, err, true)
		wrote, err = s.Upsert(ctx, "q", 1, "Omega Kettle", "Late.")
		write("Upsert q v1 after its deletion", wrote, err, false)
		wantMatch("omega")
		wantMatch("kettle", "other")

		// A newer version after a deletion indexes again.
		wrote, err = up(8, "Sigma Kettle")
		write("Upsert v8 after the deletion", wrote, err, true)
		wantMatch("sigma", "p")
		wantMatch("kettle", "p", "other")
	})

	t.Run("NameHitsRankAboveDescriptionHits", func(t *testing.T) {
		s, _ := setup(t)
		upsert(t, s, "d1", "Stool", "lantern lantern lantern lantern, the lantern stool")
		upsert(t, s, "d2", "Tarp", "Goes with a lantern.")
		upsert(t, s, "n1", "Lantern", "Bright.")
		upsert(t, s, "n2", "Folding Camp Table With Lantern Hook And Cup Holders", "Sturdy.")
		for _, q := range []string{"lantern", "lant", "lanterns"} {
			got := match(t, s, q)
			if len(got) != 4 || !slices.Equal(sorted(got[:2]), []string{"n1", "n2"}) {
				t.Errorf("match %q = %v, want n1 and n2 before d1 and d2", q, got)
			}
		}
		// With two terms, a product naming both outranks one describing both.
		upsert(t, s, "d3", "Tent", "A camp lantern hangs inside.")
		upsert(t, s, "n3", "Camp Lantern", "Bright.")
		if got := match(t, s, "camp lantern"); len(got) != 3 || !slices.Equal(sorted(got[:2]), []string{"n2", "n3"}) || got[2] != "d3" {
			t.Errorf("match camp lantern = %v, want n2 and n3, then d3", got)
		}
	})

	t.Run("UpsertReplacesAndDeleteRemoves", func(t *testing.T) {
		s, ctx := setup(t)
		upsert(t, s, "p", "Kayak Paddle", "Carbon.")
		upsert(t, s, "q", "Kayak Seat", "Padded.")
		upsert(t, s, "p", "Canoe Paddle", "Carbon.")
		upsert(t, s, "q", "Kayak Seat", "Padded.") // the same document again
		for _, tc := range []struct {
			q    string
			want []string
		}{
			{"kayak", []string{"q"}},
			{"kaya", []string{"q"}},
			{"canoe", []string{"p"}},
			{"cano", []string{"p"}},
			{"paddle", []string{"p"}},
			{"carbon", []string{"p"}},
			{"seat", []string{"q"}},
		} {
			if got := match(t, s, tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("after re-upserting: match %q = %v, want %v", tc.q, got, tc.want)
			}
		}
		// A new description replaces the old one, with the name kept.
		upsert(t, s, "p", "Canoe Paddle", "Ash wood.")
		if got := match(t, s, "carbon"); len(got) != 0 {
			t.Errorf("match carbon after a new description = %v, want nothing", got)
		}
		if got := match(t, s, "ash wood"); !slices.Equal(got, []string{"p"}) {
			t.Errorf("match ash wood = %v, want [p]", got)
		}

		if _, err := s.Delete(ctx, "p", nextVersion()); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Delete(ctx, "p", nextVersion()); err != nil {
			t.Fatalf("Delete of a document already deleted: %v", err)
		}
		if _, err := s.Delete(ctx, "never-indexed", nextVersion()); err != nil {
			t.Fatalf("Delete of a document never indexed: %v", err)
		}
		for _, q := range []string{"canoe", "cano", "paddle", "ash"} {
			if got := match(t, s, q); len(got) != 0 {
				t.Errorf("after delete: match %q = %v, want nothing", q, got)
			}
		}
		if got := match(t, s, "kayak"); !slices.Equal(got, []string{"q"}) {
			t.Errorf("after deleting p: match kayak = %v, want [q]", got)
		}
		upsert(t, s, "p", "Canoe Paddle", "Carbon.")
		if got := match(t, s, "cano"); !slices.Equal(got, []string{"p"}) {
			t.Errorf("after re-adding: match cano = %v, want [p]", got)
		}
	})

	t.Run("PagesAreStableAndComplete", func(t *testing.T) {
		s, ctx := setup(t)
		// More documents sharing a prefix than an engine might expand the
		// prefix into (see PrefixDocuments), some with the word in the name
		// and some in the description only, and many with equal ranks, so
		// ties must be broken the same way on every call.
		const n = PrefixDocuments
		var names, descriptions []string
		for i := range n {
			id := fmt.Sprintf("p%03d", (i*37)%n) // ids not in the order of writes
			if i%3 == 0 {
				upsert(t, s, id, "Plain Item", fmt.Sprintf("Goes with a hikeword%d.", i))
				descriptions = append(descriptions, id)
			} else {
				upsert(t, s, id, fmt.Sprintf("Hikeword%d", i), "Trail.")
				names = append(names, id)
			}
		}
		all, err := s.Match(ctx, []string{"hikew"}, 0, 1000)
		if err != nil || len(all) != n {
			t.Fatalf("Match in one page = %d ids, %v; want %d", len(all), err, n)
		}
		if got, want := sorted(all[:len(names)]), sorted(names); !slices.Equal(got, want) {
			t.Errorf("the first %d hits = %v, want the name hits %v", len(names), got, want)
		}
		if got := sorted(all); !slices.Equal(got, sorted(append(slices.Clone(names), descriptions...))) {
			t.Errorf("one page holds %v, want every document once", got)
		}
		for _, size := range []int{9, 40, n} {
			var paged []string
			for offset := 0; ; offset += size {
				ids, err := s.Match(ctx, []string{"hikew"}, offset, size)
				if err != nil {
					t.Fatalf("Match at offset %d limit %d: %v", offset, size, err)
				}
				if len(ids) > size {
					t.Fatalf("Match at offset %d limit %d = %d ids", offset, size, len(ids))
				}
				if len(ids) == 0 {
					break
				}
				paged = append(paged, ids...)
			}
			if !slices.Equal(paged, all) {
				t.Errorf("pages of %d differ from one page:\n%v\n%v", size, paged, all)
			}
		}
		if ids, err := s.Match(ctx, []string{"hikew"}, n, 10); err != nil || len(ids) != 0 {
			t.Errorf("Match past the last hit = %v, %v; want nothing", ids, err)
		}
		if ids, err := s.Match(ctx, []string{"hikeword5"}, 0, 100); err != nil || len(ids) != 11 {
			t.Errorf("Match hikeword5 = %v, %v; want 11 hits (5 and 50 to 59)", ids, err)
		}
	})

	t.Run("AnyTermIsAWordNeverSyntax", func(t *testing.T) {
		s, ctx := setup(t)
		upsert(t, s, "boot", "Hiking Boot", "Leather.")
		// Terms come from search.Terms, but the store must not depend on
		// it for safety: anything it is given is a word to look for, never
		// query syntax of the engine, and never an error.
		for _, term := range []string{`"`, `""`, `*`, `"*`, `OR`, `AND`, `NOT`, `NEAR(`, `-`, `)`, `(`, `:`, `^`,
			`{name}`, `'`, `''`, `\`, `&`, `|`, `!`, `<->`, `:*`, `boot:*`, `boot:A`, `%`, `_`, `?`, `$1`,
			"𞤀𞤁", "🥾", "\u0301", "\x00", "ǅ", "日本語", "a b", `boot"`, "\uFFFD", "\U0010FFFF", "\xff", "\xc3",
			"the", "a", strings.Repeat("x", 300), strings.Repeat("é", 3000), "boot\x00"} {
			for _, terms := range [][]string{{term}, {term, "boot"}, {"boot", term}, {term, term}} {
				if _, err := s.Match(ctx, terms, 0, 10); err != nil {
					t.Errorf("Match(%.40q): %v", terms, err)
				}
			}
		}
		// Syntax in a term never widens a query: with a term that names
		// nothing, nothing matches, however the store reads the others.
		for _, term := range []string{"OR", "or", "|", "||", "*", "NOT", "-", "!", "(", ")", `"`, "\x00"} {
			for _, terms := range [][]string{{"nothing", term, "boot"}, {"boot", term, "nothing"}, {term, "nothing"}} {
				if ids, err := s.Match(ctx, terms, 0, 10); err != nil || len(ids) != 0 {
					t.Errorf("Match(%.40q) = %v, %v; want nothing", terms, ids, err)
				}
			}
		}
		// Every term must match, even one an engine cannot index: a word
		// longer than any indexed word, or letters of a rare script.
		for _, word := range []string{strings.Repeat("x", 300), strings.Repeat("é", 3000), "𞤀𞤁", "日本語", "ǅ", "ελληνικά"} {
			w := search.Terms(word)
			if len(w) != 1 {
				t.Fatalf("Terms(%q) = %q, want one word", word, w)
			}
			for _, terms := range [][]string{{"boot", w[0]}, {w[0], "boot"}, {w[0]}} {
				if ids, err := s.Match(ctx, terms, 0, 10); err != nil || len(ids) != 0 {
					t.Errorf("Match(%.40q) = %v, %v; want nothing", terms, ids, err)
				}
			}
		}
		// The product is still found afterwards.
		if got := match(t, s, "boot"); !slices.Equal(got, []string{"boot"}) {
			t.Errorf("match boot = %v, want [boot]", got)
		}
	})
}

// versions hands out increasing versions, so that every write of a test
// that does not care about them is newer than the last.
var versions atomic.Int64

func nextVersion() int64 { return versions.Add(1) }

func upsert(t *testing.T, s search.Store, id, name, description string) {
	t.Helper()
	if wrote, err := s.Upsert(context.Background(), id, nextVersion(), name, description); err != nil || !wrote {
		t.Fatalf("Upsert %s = %v, %v; want it written", id, wrote, err)
	}
}

// match runs q through the same term splitting the service uses.
func match(t *testing.T, s search.Store, q string) []string {
	t.Helper()
	terms := search.Terms(q)
	if len(terms) == 0 {
		t.Fatalf("query %q has no terms", q)
	}
	ids, err := s.Match(context.Background(), terms, 0, 100)
	if err != nil {
		t.Fatalf("Match %q: %v", q, err)
	}
	return ids
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
