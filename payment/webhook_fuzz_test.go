package payment_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
)

// fuzzSigCheckInvalid fails unless err is a client error (Invalid → 400):
// a forged or garbled webhook must never look like a server failure.
func fuzzSigCheckInvalid(t *testing.T, err error, header string) {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Invalid {
		t.Fatalf("header %q: error %v is not a fault.Invalid", header, err)
	}
}

// FuzzSignatureHeader holds the webhook signature scheme to its promises:
// parsing and verifying any header never panics and fails only with
// Invalid; a header made by Sign verifies for the same secret, body and
// time (within SignatureTolerance); and no single-byte change of the body,
// nor a different secret, verifies.
func FuzzSignatureHeader(f *testing.F) {
	secret := []byte("whsec_0123456789abcdef")
	body := []byte(`{"id":"evt_1","type":"payment.captured","data":{"payment_id":"pay_1"}}`)
	at := time.Unix(1_700_000_000, 0)
	f.Add(payment.Sign(secret, at, body), secret, body, int64(1_700_000_000), int64(0), uint(3), byte(1))
	f.Add("", []byte{}, []byte{}, int64(1), int64(300), uint(0), byte(0))
	f.Add("t=1700000000", secret, body, int64(1_700_000_000), int64(-300), uint(0), byte(0x80))
	f.Add("t=1700000000,v1=zz", secret, body, int64(1_700_000_000), int64(301), uint(7), byte(0xff))
	f.Add("t=-5,v1="+string(bytes.Repeat([]byte("ab"), 32)), secret, body, int64(1)<<40, int64(-301), uint(9), byte(2))
	f.Add("t=1,t=2,v1=00", secret, []byte("x"), int64(0), int64(1)<<62, uint(1), byte(4))
	f.Add(" t = 1 , v1 = , =, ,", []byte("k"), []byte("\x00"), int64(-1), int64(-1)<<62, uint(100), byte(8))
	f.Add("t=99999999999999999999999,v1="+string(bytes.Repeat([]byte("0"), 64)), secret, body, int64(1)<<41, int64(5), uint(2), byte(16))
	f.Fuzz(func(t *testing.T, header string, secret, body []byte, unix, offset int64, pos uint, flip byte) {
		now := time.Unix(unix, 0)
		if _, _, err := payment.ParseSignature(header); err != nil {
			fuzzSigCheckInvalid(t, err, header)
		}
		if err := payment.VerifySignature(secret, header, body, now); err != nil {
			fuzzSigCheckInvalid(t, err, header)
		}

		// ParseSignature only accepts timestamps in 1..2^40 (1970 to year
		// ~36812), so Sign's promise holds for those.
		ts := unix % (1 << 40)
		if ts <= 0 {
			ts += 1 << 40
		}
		at := time.Unix(ts, 0)
		signed := payment.Sign(secret, at, body)
		if err := payment.VerifySignature(secret, signed, body, at); err != nil {
			t.Fatalf("Sign(%q, %d, %q) = %q does not verify: %v", secret, ts, body, signed, err)
		}

		skew := time.Duration(offset%int64(2*payment.SignatureTolerance/time.Second)) * time.Second
		err := payment.VerifySignature(secret, signed, body, at.Add(skew))
		inWindow := skew <= payment.SignatureTolerance && skew >= -payment.SignatureTolerance
		if inWindow && err != nil {
			t.Fatalf("signature %q refused %v after signing: %v", signed, skew, err)
		}
		if !inWindow && err == nil {
			t.Fatalf("signature %q accepted %v after signing, beyond the tolerance", signed, skew)
		}

		if len(body) > 0 {
			i := int(pos % uint(len(body)))
			changed := bytes.Clone(body)
			changed[i] ^= flip | 1 // never a no-op
			if err := payment.VerifySignature(secret, signed, changed, at); err == nil {
				t.Fatalf("byte %d of the body changed (%q → %q) and the signature still verifies", i, body, changed)
			} else {
				fuzzSigCheckInvalid(t, err, signed)
			}
			if err := payment.VerifySignature(secret, signed, body[:len(body)-1], at); err == nil {
				t.Fatalf("the body lost its last byte and the signature still verifies")
			}
		}
		if err := payment.VerifySignature(append(bytes.Clone(secret), 'x'), signed, body, at); err == nil {
			t.Fatalf("a different secret verifies the signature")
		}
	})
}
