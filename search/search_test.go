package search

import (
	"slices"
	"strings"
	"testing"
)

func TestTerms(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("w ", MaxTerms+5)
	for _, tc := range []struct {
		name string
		q    string
		want []string
	}{
		{"one word", "boot", []string{"boot"}},
		{"lowercased", "Hiking BOOTS", []string{"hiking", "boots"}},
		{"runs of spaces and tabs", "  red \t\n chair ", []string{"red", "chair"}},
		{"digits are word characters", "gore-tex 3000mAh", []string{"gore", "tex", "3000mah"}},
		{"quotes are separators", `"red chair"`, []string{"red", "chair"}},
		{"doubled quotes", `a""b`, []string{"a", "b"}},
		{"prefix star", "hik*", []string{"hik"}},
		{"boolean operators are words", "boot OR tent NOT stove AND", []string{"boot", "or", "tent", "not", "stove", "and"}},
		{"NEAR group", "NEAR(boot tent, 5)", []string{"near", "boot", "tent", "5"}},
		{"column filter", "name:boot {name description}:tent", []string{"name", "boot", "name", "description", "tent"}},
		{"caret and minus", "^boot -tent +stove", []string{"boot", "tent", "stove"}},
		{"SQL", "'; DROP TABLE products; --", []string{"drop", "table", "products"}},
		{"only punctuation", `"*()-:^+{}`, nil},
		{"empty", "", nil},
		{"emoji", "🥾👨‍👩‍👧", nil},
		{"emoji between words", "boot🥾tent", []string{"boot", "tent"}},
		{"diacritics kept", "Café Crème", []string{"café", "crème"}},
		{"non-Latin scripts", "日本語 Ελληνικά שלום", []string{"日本語", "ελληνικά", "שלום"}},
		{"combining mark separates", "cafe\u0301s", []string{"cafe", "s"}},
		{"zero-width and control characters", "a\u200bb\x00c\x01d", []string{"a", "b", "c", "d"}},
		{"at most MaxTerms words", many, slices.Repeat([]string{"w"}, MaxTerms)},
	} {
		if got := Terms(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Terms(%q) = %q, want %q", tc.name, tc.q, got, tc.want)
		}
	}
}
