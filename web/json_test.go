package web_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// webDecodeRequest is shaped like the API's request bodies.
type webDecodeRequest struct {
	Email      string  `json:"email"`
	PriceCents *int64  `json:"price_cents"`
	Name       *string `json:"name"`
	Payment    struct {
		Method string `json:"method"`
		Token  string `json:"token"`
	} `json:"payment"`
}

// webDecode runs Decode on a POST with the given body and Content-Type and
// returns the error as the client would see it (status and problem).
func webDecode(t *testing.T, contentType string, body []byte) (webDecodeRequest, error, *httptest.ResponseRecorder, webProblemBody) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/things", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	var dst webDecodeRequest
	err := web.Decode(w, r, &dst)
	if err == nil {
		return dst, nil, nil, webProblemBody{}
	}
	pw := httptest.NewRecorder()
	web.WriteError(pw, r, nil, err)
	return dst, err, pw, webDecodeProblem(t, pw)
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "application/merge-patch+json"} {
		body := []byte(" {\"email\":\"a@example.com\",\"price_cents\":-5,\"name\":\"😀\u202e\",\"payment\":{\"method\":\"card\",\"token\":\"t\"}}\n")
		got, err, _, _ := webDecode(t, ct, body)
		if err != nil {
			t.Fatalf("Content-Type %q: Decode = %v", ct, err)
		}
		if got.Email != "a@example.com" || got.PriceCents == nil || *got.PriceCents != -5 ||
			got.Name == nil || *got.Name != "😀\u202e" || got.Payment.Token != "t" {
			t.Errorf("Content-Type %q: decoded %+v", ct, got)
		}
	}
}

// Escapes that are not lone surrogates pass: pairs, and text that only
// looks like an escape.
func TestDecodeSurrogates(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"email":"\ud83d\ude00"}`:           "😀",
		`{"email":"\\ud800"}`:                `\ud800`,
		`{"email":"\"\\\ud83d\uDE00\u00e9"}`: `"\😀é`,
		`{"email":"\ud7ff\ue000"}`:           "\ud7ff\ue000",
	} {
		got, err, _, _ := webDecode(t, "application/json", []byte(body))
		if err != nil || got.Email != want {
			t.Errorf("Decode(%s) = %q, %v; want %q", body, got.Email, err, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	big := []byte(`{"email":"` + strings.Repeat("a", web.MaxBodyBytes) + `"}`)
	tests := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		field       string // the field the problem must name, if any
		code        string // the problem code, if it matters
	}{
		{"unknown field", "application/json", []byte(`{"email":"a@b.co","role":"admin"}`), 400, "role", ""},
		{"unknown nested field", "application/json", []byte(`{"payment":{"method":"card","cvv":"123"}}`), 400, "cvv", ""},
		{"unknown field with quote", "application/json", []byte(`{"a\"b":1}`), 400, `a"b`, ""},
		{"trailing object", "application/json", []byte(`{"email":"a"}{"email":"b"}`), 400, "", ""},
		{"trailing garbage", "application/json", []byte(`{"email":"a"} x`), 400, "", ""},
		{"trailing brace", "application/json", []byte(`{"email":"a"}}`), 400, "", ""},
		{"string for number", "application/json", []byte(`{"price_cents":"12"}`), 400, "price_cents", ""},
		{"number for string", "application/json", []byte(`{"email":12}`), 400, "email", ""},
		{"nested wrong type", "application/json", []byte(`{"payment":{"token":5}}`), 400, "payment.token", ""},
		{"string for object", "application/json", []byte(`{"payment":"card"}`), 400, "payment", ""},
		{"float for integer", "application/json", []byte(`{"price_cents":1.5}`), 400, "price_cents", ""},
		{"overflowing integer", "application/json", []byte(`{"price_cents":9223372036854775808}`), 400, "price_cents", ""},
		{"overflowing exponent", "application/json", []byte(`{"price_cents":1e400}`), 400, "price_cents", ""},
		{"malformed", "application/json", []byte(`{"email":`), 400, "", ""},
		{"single quotes", "application/json", []byte(`{'email':'a'}`), 400, "", ""},
		{"array", "application/json", []byte(`[{"email":"a"}]`), 400, "", ""},
		{"null", "application/json", []byte(`null`), 400, "", ""},
		{"number", "application/json", []byte(`42`), 400, "", ""},
		{"empty body", "application/json", nil, 400, "", ""},
		{"whitespace body", "application/json", []byte(" \n\t "), 400, "", ""},
		{"invalid UTF-8", "application/json", []byte("{\"email\":\"\xff\xfe\"}"), 400, "", ""},
		{"lone high surrogate", "application/json", []byte(`{"email":"\ud800"}`), 400, "", ""},
		{"lone low surrogate", "application/json", []byte(`{"email":"a\uDC00b"}`), 400, "", ""},
		{"high surrogate then letter", "application/json", []byte(`{"email":"\ud83d\u0041"}`), 400, "", ""},
		{"high surrogate at end", "application/json", []byte(`{"payment":{"token":"x\uD83D"}}`), 400, "", ""},
		{"surrogate in a key", "application/json", []byte(`{"\udfff":1}`), 400, "", ""},
		{"byte order mark", "application/json", []byte("\xef\xbb\xbf{}"), 400, "", ""},
		{"too deep", "application/json", []byte(`{"email":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`), 400, "", ""},
		{"text/plain", "text/plain", []byte(`{"email":"a"}`), 400, "", "unsupported_media_type"},
		{"form", "application/x-www-form-urlencoded", []byte(`email=a`), 400, "", "unsupported_media_type"},
		{"broken media type", "application/json; =", []byte(`{}`), 400, "", "unsupported_media_type"},
		{"over 1 MiB", "application/json", big, 413, "", "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err, w, p := webDecode(t, tt.contentType, tt.body)
			if err == nil {
				t.Fatalf("Decode(%.80q) accepted it", tt.body)
			}
			if w.Code != tt.status || p.Status != tt.status {
				t.Fatalf("status = %d (body %d), want %d: %v", w.Code, p.Status, tt.status, err)
			}
			if tt.status == 413 && !fault.Is(err, fault.TooLarge) {
				t.Errorf("kind = %v, want TooLarge", fault.KindOf(err))
			}
			if tt.code != "" && p.Code != tt.code {
				t.Errorf("code = %q, want %q", p.Code, tt.code)
			}
			if tt.field != "" {
				if len(p.Errors) != 1 || p.Errors[0].Field != tt.field || p.Errors[0].Message == "" {
					t.Errorf("errors = %+v, want one naming %q", p.Errors, tt.field)
				}
			}
			if p.Detail == "" {
				t.Errorf("problem has no detail: %+v", p)
			}
		})
	}
}

// The limit is inclusive: a body of exactly MaxBodyBytes is read, one byte
// more is refused.
func TestReadBodyLimitIsExact(t *testing.T) {
	t.Parallel()
	for _, n := range []int{web.MaxBodyBytes, web.MaxBodyBytes + 1} {
		body := bytes.Repeat([]byte(" "), n)
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		got, err := web.ReadBody(httptest.NewRecorder(), r)
		if n <= web.MaxBodyBytes && (err != nil || len(got) != n) {
			t.Errorf("%d bytes: ReadBody = %d bytes, %v; want all of it", n, len(got), err)
		}
		if n > web.MaxBodyBytes && !fault.Is(err, fault.TooLarge) {
			t.Errorf("%d bytes: ReadBody error = %v, want TooLarge", n, err)
		}
	}
}

func TestTypeErrorMessage(t *testing.T) {
	t.Parallel()
	var dst webDecodeRequest
	err := web.DecodeBytes([]byte(`{"price_cents":"12"}`), &dst)
	fe, ok := err.(*fault.Error)
	if !ok || fe.Kind != fault.Invalid || len(fe.Fields) != 1 {
		t.Fatalf("err = %v, want Invalid on one field", err)
	}
	if got, want := fe.Fields[0].Message, "must be an integer in range"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  int
		ok    bool
	}{
		{"", web.DefaultLimit, true},
		{"other=1", web.DefaultLimit, true},
		{"limit=1", 1, true},
		{"limit=50", 50, true},
		{"limit=100", 100, true},
		{"limit=007", 7, true},
		{"limit=0", 0, false},
		{"limit=101", 0, false},
		{"limit=-1", 0, false},
		{"limit=", 0, false},
		{"limit=abc", 0, false},
		{"limit=1.5", 0, false},
		{"limit=1e2", 0, false},
		{"limit=%2010", 0, false},
		{"limit=99999999999999999999", 0, false},
		{"limit=10&limit=20", 0, false},
		{"limit=10&limit=10", 0, false},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatalf("ParseQuery(%q): %v", tt.query, err)
		}
		got, err := web.Limit(q)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("Limit(%q) = %d, %v; want %d", tt.query, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Limit(%q) = %d, want an error", tt.query, got)
			continue
		}
		fe, ok := err.(*fault.Error)
		if !ok || fe.Kind != fault.Invalid || len(fe.Fields) != 1 || fe.Fields[0].Field != "limit" {
			t.Errorf("Limit(%q) error = %#v, want Invalid on field limit", tt.query, err)
		}
	}
}

func TestSingle(t *testing.T) {
	t.Parallel()
	q := url.Values{"sort": {"price"}, "cursor": {"a", "b"}, "empty": {""}}
	if v, err := web.Single(q, "sort"); v != "price" || err != nil {
		t.Errorf("Single(sort) = %q, %v", v, err)
	}
	if v, err := web.Single(q, "missing"); v != "" || err != nil {
		t.Errorf("Single(missing) = %q, %v", v, err)
	}
	if v, err := web.Single(q, "empty"); v != "" || err != nil {
		t.Errorf("Single(empty) = %q, %v", v, err)
	}
	if _, err := web.Single(q, "cursor"); !fault.Is(err, fault.Invalid) {
		t.Errorf("Single(repeated) error = %v, want Invalid", err)
	}
}

func TestCursorRejects(t *testing.T) {
	t.Parallel()
	var pos fuzzPosition
	good := web.EncodeCursor(fuzzPosition{Sort: "price", ID: "p1", PriceCents: 5})
	if err := web.DecodeCursor(good, &pos); err != nil || pos.ID != "p1" || pos.PriceCents != 5 {
		t.Fatalf("DecodeCursor(good) = %+v, %v", pos, err)
	}
	for _, c := range []string{
		"",
		"not base64!",
		good + "=",
		web.EncodeCursor(map[string]any{"id": "p1", "admin": true}),
		web.EncodeCursor([]string{"p1"}),
		web.EncodeCursor(map[string]any{"price_cents": "5"}),
		web.EncodeCursor(map[string]string{"id": strings.Repeat("x", web.MaxCursorLen)}),
		base64.RawURLEncoding.EncodeToString([]byte(`{"id":"p1"}]`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"id":"p1"} {}`)),
	} {
		if err := web.DecodeCursor(c, &pos); !fault.Is(err, fault.Invalid) {
			t.Errorf("DecodeCursor(%.40q) = %v, want Invalid", c, err)
		}
	}
}
