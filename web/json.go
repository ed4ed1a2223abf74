package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/millionshop/million/fault"
)

// MaxBodyBytes is the largest request body the API accepts.
const MaxBodyBytes = 1 << 20

// ReadBody reads the whole request body, enforcing MaxBodyBytes and the JSON
// media type. It returns the raw bytes so callers can hash or verify them.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, fault.New(fault.Invalid, "unsupported_media_type", "request bodies must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fault.New(fault.TooLarge, "", fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
		}
		return nil, fault.New(fault.Invalid, "", "the request body could not be read")
	}
	return body, nil
}

// Decode reads the request body into dst strictly: unknown fields, trailing
// data, wrong types and bodies over MaxBodyBytes are rejected with a clear
// client error. dst must be a pointer.
func Decode(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := ReadBody(w, r)
	if err != nil {
		return err
	}
	return DecodeBytes(body, dst)
}

// DecodeBytes decodes one JSON object from body into dst with the same rules
// as Decode: the body must be UTF-8 (no unpaired surrogate escapes either)
// and hold exactly one object whose fields dst names.
func DecodeBytes(body []byte, dst any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return fault.New(fault.Invalid, "", "the request body must be a JSON object")
	}
	// encoding/json silently replaces invalid UTF-8, and \u escapes of
	// unpaired surrogates, with U+FFFD, so a client would get back something
	// other than what it sent; refuse both instead.
	if !utf8.Valid(body) || hasLoneSurrogate(body) {
		return fault.New(fault.Invalid, "", "the request body is not valid UTF-8")
	}
	// A top-level null would decode into a zero request without complaint
	// (and arrays or scalars give a less helpful error), so insist on an
	// object up front.
	if trimmed[0] != '{' {
		return fault.New(fault.Invalid, "", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Invalid, "", "the request body must hold a single JSON object")
	}
	return nil
}

// hasLoneSurrogate reports whether a JSON string in body holds a \u escape
// of a UTF-16 surrogate that is not part of a high-low pair. It only looks
// inside strings; malformed JSON is left to the decoder.
func hasLoneSurrogate(body []byte) bool {
	if !bytes.Contains(body, []byte(`\u`)) {
		return false
	}
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(body) {
				return false
			}
			if body[i+1] != 'u' {
				i++ // skip the escaped character
				continue
			}
			r, ok := hex4(body, i+2)
			if !ok {
				return false // malformed; the decoder reports it
			}
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return true
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
					return true
				}
				lo, ok := hex4(body, i+3)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

// hex4 parses the four hex digits at body[at:at+4].
func hex4(body []byte, at int) (rune, bool) {
	if at+4 > len(body) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(body[at:at+4]), 16, 16)
	return rune(n), err == nil
}

func decodeError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fault.New(fault.Invalid, "", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fault.New(fault.Invalid, "", "the request body must be a JSON object")
		}
		return fault.Fields(fault.FieldError{Field: field, Message: "must be " + jsonTypeName(typeErr.Type.Kind().String())})
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "", "the request body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is Go-quoted (%q) in the message; unquote it so a name
		// with quotes or escapes is reported as the client wrote it.
		quoted := strings.TrimPrefix(err.Error(), "json: unknown field ")
		name, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			name = strings.Trim(quoted, `"`)
		}
		return fault.Fields(fault.FieldError{Field: name, Message: "unknown field"})
	default:
		return fault.New(fault.Invalid, "", "the request body is not valid JSON for this endpoint")
	}
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer in range"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	default:
		return "an object"
	}
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		WriteProblem(w, Problem{Type: "urn:million:problem:internal", Title: "Internal Server Error", Status: 500, Code: "internal"})
		return
	}
	WriteRawJSON(w, status, buf)
}

// WriteRawJSON writes an already encoded JSON body.
func WriteRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
}

// MissingField is the error for a required body field that is absent.
func MissingField(name string) error {
	return fault.Fields(fault.FieldError{Field: name, Message: "is required"})
}
