package web_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// fuzzPayment mirrors the nested object of the checkout request.
type fuzzPayment struct {
	Method string `json:"method"`
	Token  string `json:"token"`
}

// fuzzRequest has the shapes the API's request bodies use: plain strings,
// optional strings and integers (PATCH semantics) and a nested object.
type fuzzRequest struct {
	Email      string      `json:"email"`
	Name       *string     `json:"name"`
	PriceCents *int64      `json:"price_cents"`
	Stock      *int64      `json:"stock"`
	Payment    fuzzPayment `json:"payment"`
}

// fuzzCheckInvalid fails unless err is a *fault.Error of kind Invalid, which
// the router answers with 400: a bad body is the client's fault, never a 500.
func fuzzCheckInvalid(t *testing.T, err error, input any) {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("input %q: error %v (%T) is not a *fault.Error", input, err, err)
	}
	if fe.Kind != fault.Invalid || web.StatusOf(fe.Kind) != http.StatusBadRequest {
		t.Fatalf("input %q: error kind %v (status %d), want Invalid (400): %v", input, fe.Kind, web.StatusOf(fe.Kind), err)
	}
}

// FuzzDecode holds DecodeBytes to its contract for arbitrary bodies: it never
// panics, rejects with Invalid only, accepts only one well-formed UTF-8 JSON
// object, and what it accepts survives an encode/decode round trip.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"email":"a@example.com","name":"Ann","price_cents":1299,"stock":3,"payment":{"method":"card","token":"tok_visa"}}`,
		`{}`,
		` {"name":null} `,
		`{"name":"\u0000\u202e😀"}`,
		`{"price_cents":1e400}`,
		`{"price_cents":9223372036854775808}`,
		`{"price_cents":-9223372036854775808}`,
		`{"stock":1.5}`,
		`{"payment":{"token":5}}`,
		`{"payment":"card"}`,
		`{"role":"admin"}`,
		`{"EMAIL":"upper"}`,
		`{"email":"a","email":"b"}`,
		`{"email":"x"}{"email":"y"}`,
		`{"email":"x"}}`,
		`[]`,
		`null`,
		`"str"`,
		"{\"name\":\"\xff\xfe\"}",
		`{"name":"\ud800"}`,
		`{"name":"\ud83d\ude00\\ud800"}`,
		`{"name":"\ud83d\u0041"}`,
		`{"name":"\\ufffd\ud800"}`,
		`{"name":"\uFFFD�"}`,
		"\xef\xbb\xbf{}",
		`{"a` + strings.Repeat(`[`, 200),
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v fuzzRequest
		err := web.DecodeBytes(body, &v)
		if err != nil {
			fuzzCheckInvalid(t, err, body)
			// A well-formed UTF-8 body refused as "not UTF-8" must really
			// hold an escape that would decode to U+FFFD.
			if strings.Contains(err.Error(), "UTF-8") && utf8.Valid(body) && json.Valid(body) {
				var anyv any
				_ = json.Unmarshal(body, &anyv)
				out, _ := json.Marshal(anyv)
				if !fuzzMangled(body, out) {
					t.Fatalf("refused %q as not UTF-8, but it decodes cleanly to %s", body, out)
				}
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not one JSON value: %q", body)
		}
		if trimmed := strings.TrimLeft(string(body), " \t\r\n"); !strings.HasPrefix(trimmed, "{") {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		// A replacement character that the client did not send means the
		// decoder mangled invalid input instead of refusing it.
		if fuzzMangled(body, again) {
			t.Fatalf("accepted %q but decoded a replacement character: %s", body, again)
		}
		var w fuzzRequest
		if err := web.DecodeBytes(again, &w); err != nil {
			t.Fatalf("decoding the re-encoded %s failed: %v", again, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %q changed the value:\n got %+v\nwant %+v", body, w, v)
		}
	})
}

// fuzzMangled reports whether decoded holds more replacement characters
// than the client sent in body, raw or as \ufffd escapes (an escaped
// backslash followed by "ufffd" is text, not an escape).
func fuzzMangled(body, decoded []byte) bool {
	unescaped := strings.ReplaceAll(strings.ToLower(string(body)), `\\`, "")
	sent := strings.Count(string(body), "\uFFFD") + strings.Count(unescaped, `\ufffd`)
	return strings.Count(string(decoded), "\uFFFD") > sent
}

// fuzzPosition is shaped like the list positions the services put in cursors.
type fuzzPosition struct {
	Sort       string `json:"sort"`
	ID         string `json:"id"`
	PriceCents int64  `json:"price_cents"`
}

// FuzzCursor holds DecodeCursor to its contract: any string a client sends
// is either a cursor or a 400 on the cursor parameter, and every cursor
// EncodeCursor makes (within MaxCursorLen) decodes to the same position.
func FuzzCursor(f *testing.F) {
	f.Add(web.EncodeCursor(fuzzPosition{Sort: "price", ID: "0190a1b2-c3d4", PriceCents: 1299}), "price", "0190a1b2-c3d4", int64(1299))
	f.Add("", "", "", int64(0))
	f.Add("!!!", "newest", "x", int64(-1))
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"id":"x"}}`)), "-price", "\u202e", int64(1)<<62)
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"id":"x","extra":1}`)), "😀", "\x00", int64(-1)<<63)
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"id":"x"}`)), "newest", strings.Repeat("z", 600), int64(7))
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`null`)), "\xff", "ok", int64(0))
	f.Fuzz(func(t *testing.T, cursor, sort, id string, price int64) {
		var got fuzzPosition
		if err := web.DecodeCursor(cursor, &got); err != nil {
			fuzzCheckInvalid(t, err, cursor)
			var fe *fault.Error
			errors.As(err, &fe)
			if len(fe.Fields) != 1 || fe.Fields[0].Field != "cursor" {
				t.Fatalf("cursor %q: error names fields %v, want exactly cursor", cursor, fe.Fields)
			}
		} else {
			raw, derr := base64.RawURLEncoding.DecodeString(cursor)
			if derr != nil || !json.Valid(raw) {
				t.Fatalf("accepted cursor %q whose payload %q is not one JSON value", cursor, raw)
			}
			if len(cursor) > web.MaxCursorLen {
				t.Fatalf("accepted a cursor of %d bytes, over MaxCursorLen", len(cursor))
			}
		}

		in := fuzzPosition{Sort: sort, ID: id, PriceCents: price}
		c := web.EncodeCursor(in)
		var out fuzzPosition
		err := web.DecodeCursor(c, &out)
		if len(c) > web.MaxCursorLen {
			if err == nil {
				t.Fatalf("a %d-byte cursor was accepted", len(c))
			}
			fuzzCheckInvalid(t, err, c)
			return
		}
		if err != nil {
			t.Fatalf("DecodeCursor(EncodeCursor(%+v)) = %v", in, err)
		}
		// JSON cannot carry invalid UTF-8, so only valid strings must come
		// back byte for byte.
		if utf8.ValidString(sort) && utf8.ValidString(id) && out != in {
			t.Fatalf("cursor round trip: got %+v, want %+v", out, in)
		}
		if out.PriceCents != in.PriceCents {
			t.Fatalf("cursor round trip lost price: got %d, want %d", out.PriceCents, in.PriceCents)
		}
	})
}
