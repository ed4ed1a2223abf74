package sqldb

import (
	"strings"
	"unicode/utf8"

	"github.com/millionshop/million/fault"
)

// Storable reports whether every s fits a PostgreSQL TEXT column: valid
// UTF-8 without NUL. SQLite would take anything, so stores check their text
// with Storable to make both engines behave alike: a write with unstorable
// text returns ErrUnstorable instead of succeeding on one engine and failing
// with an encoding error on the other, and a lookup by an unstorable key
// finds nothing without asking the database, since no stored row can hold
// such a key.
func Storable(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// ErrUnstorable is what a store returns for a write whose text is not
// Storable: the client sent it, so it is a 400 (fault.Invalid), with the
// message fault.Wrap gives a value the database itself refused.
var ErrUnstorable = fault.New(fault.Invalid, "", "a value in the request cannot be stored")
