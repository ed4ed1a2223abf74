package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"

	"github.com/millionshop/million/fault"
)

// MaxCursorLen bounds the size of a cursor a client may send.
const MaxCursorLen = 512

// EncodeCursor turns a position in a list into an opaque cursor string.
func EncodeCursor(position any) string {
	b, _ := json.Marshal(position)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor made by EncodeCursor into dst (a pointer to a
// struct). Anything else — bad base64, bad JSON, unknown fields, trailing
// data — is a 400 on the cursor parameter, never a server error.
func DecodeCursor(cursor string, dst any) error {
	bad := fault.Fields(fault.FieldError{Field: "cursor", Message: "is not a cursor this list returned"})
	if cursor == "" || len(cursor) > MaxCursorLen {
		return bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return bad
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bad
	}
	// dec.More would report false for a stray '}' or ']', so ask for the
	// next token and accept only the end of the input.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad
	}
	return nil
}
