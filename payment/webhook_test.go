package payment

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
)

// TestParseSignature proves which Payment-Signature headers are understood:
// one timestamp, at least one 32-byte hex v1 signature, unknown schemes
// ignored, anything else refused as an Invalid error.
func TestParseSignature(t *testing.T) {
	t.Parallel()
	sigA := strings.Repeat("ab", 32)
	sigB := strings.Repeat("0f", 32)
	cases := []struct {
		name   string
		header string
		ok     bool
		ts     int64
		sigs   []string
	}{
		{"one signature", "t=1700000000,v1=" + sigA, true, 1700000000, []string{sigA}},
		{"two signatures for a rotated secret", "t=1700000000,v1=" + sigA + ",v1=" + sigB, true, 1700000000, []string{sigA, sigB}},
		{"signature first", "v1=" + sigA + ",t=1700000000", true, 1700000000, []string{sigA}},
		{"spaces around parts", " t=1700000000 , v1=" + sigA + " ", true, 1700000000, []string{sigA}},
		{"unknown scheme ignored", "t=1700000000,v0=deadbeef,v1=" + sigA, true, 1700000000, []string{sigA}},
		{"upper-case hex", "t=1700000000,v1=" + strings.ToUpper(sigA), true, 1700000000, []string{sigA}},

		{"empty", "", false, 0, nil},
		{"garbage", "garbage", false, 0, nil},
		{"no timestamp", "v1=" + sigA, false, 0, nil},
		{"no signature", "t=1700000000", false, 0, nil},
		{"only an unknown scheme", "t=1700000000,v0=" + sigA, false, 0, nil},
		{"two timestamps", "t=1700000000,t=1700000001,v1=" + sigA, false, 0, nil},
		{"timestamp not a number", "t=soon,v1=" + sigA, false, 0, nil},
		{"timestamp zero", "t=0,v1=" + sigA, false, 0, nil},
		{"timestamp negative", "t=-5,v1=" + sigA, false, 0, nil},
		{"timestamp too far out", "t=" + strconv.FormatInt(1<<41, 10) + ",v1=" + sigA, false, 0, nil},
		{"timestamp overflowing", "t=99999999999999999999999,v1=" + sigA, false, 0, nil},
		{"signature not hex", "t=1700000000,v1=" + strings.Repeat("zz", 32), false, 0, nil},
		{"signature too short", "t=1700000000,v1=" + sigA[:62], false, 0, nil},
		{"signature too long", "t=1700000000,v1=" + sigA + "00", false, 0, nil},
		{"signature odd length", "t=1700000000,v1=" + sigA + "0", false, 0, nil},
		{"empty signature", "t=1700000000,v1=", false, 0, nil},
		{"part without =", "t=1700000000,v1" + sigA, false, 0, nil},
		{"trailing comma", "t=1700000000,v1=" + sigA + ",", false, 0, nil},
		{"over 1 KiB", "t=1700000000,v1=" + sigA + strings.Repeat(",x=y", 300), false, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts, sigs, err := ParseSignature(tc.header)
			if !tc.ok {
				if !fault.Is(err, fault.Invalid) {
					t.Fatalf("ParseSignature(%q) err = %v, want an Invalid error", tc.header, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSignature(%q) err = %v, want nil", tc.header, err)
			}
			if ts.Unix() != tc.ts {
				t.Errorf("timestamp = %d, want %d", ts.Unix(), tc.ts)
			}
			if len(sigs) != len(tc.sigs) {
				t.Fatalf("got %d signatures, want %d", len(sigs), len(tc.sigs))
			}
			for i, want := range tc.sigs {
				if got := hex.EncodeToString(sigs[i]); got != want {
					t.Errorf("signature %d = %s, want %s", i, got, want)
				}
			}
		})
	}
}

// TestVerifySignature proves a signature is accepted only for the same
// secret, timestamp and body, within five minutes either side of now.
func TestVerifySignature(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec-test-0123456789")
	body := []byte(`{"id":"evt_1","type":"payment.refunded","data":{"payment_id":"p1"}}`)
	now := time.Unix(1_700_000_000, 0)
	valid := Sign(secret, now, body)
	ts := "t=" + strconv.FormatInt(now.Unix(), 10)
	v1 := valid[strings.Index(valid, "v1="):]

	cases := []struct {
		name   string
		header string
		body   []byte
		at     time.Time
		code   string // "" when it must verify
	}{
		{"valid", valid, body, now, ""},
		{"4m59s later", valid, body, now.Add(4*time.Minute + 59*time.Second), ""},
		{"exactly 5 minutes later", valid, body, now.Add(SignatureTolerance), ""},
		{"clock 4 minutes behind", valid, body, now.Add(-4 * time.Minute), ""},
		{"rotated: second signature matches", ts + ",v1=" + strings.Repeat("00", 32) + "," + v1, body, now, ""},
		{"5m01s later", valid, body, now.Add(5*time.Minute + time.Second), "stale_signature"},
		{"6 minutes later", valid, body, now.Add(6 * time.Minute), "stale_signature"},
		{"clock 6 minutes behind", valid, body, now.Add(-6 * time.Minute), "stale_signature"},
		{"wrong secret", Sign([]byte("other-secret"), now, body), body, now, "bad_signature"},
		{"body changed", valid, bytes.Replace(body, []byte("p1"), []byte("p2"), 1), now, "bad_signature"},
		{"body with a trailing newline", valid, append(append([]byte{}, body...), '\n'), now, "bad_signature"},
		{"timestamp changed", "t=" + strconv.FormatInt(now.Unix()+1, 10) + "," + v1, body, now, "bad_signature"},
		{"missing", "", body, now, "bad_signature"},
		{"malformed", "t=x", body, now, "bad_signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(secret, tc.header, tc.body, tc.at)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("VerifySignature err = %v, want nil", err)
				}
				return
			}
			if !fault.Is(err, fault.Invalid) || !fault.HasCode(err, tc.code) {
				t.Fatalf("VerifySignature err = %v, want Invalid %s", err, tc.code)
			}
		})
	}
}

// TestSignFormat proves Sign writes what ParseSignature reads: the unix
// timestamp and the hex HMAC-SHA256 of "t.body".
func TestSignFormat(t *testing.T) {
	t.Parallel()
	at := time.Unix(1_700_000_123, 0)
	header := Sign([]byte("k"), at, []byte("{}"))
	// The documented scheme, computed here rather than with the package's helper.
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte("1700000123.{}"))
	want := "t=1700000123,v1=" + hex.EncodeToString(m.Sum(nil))
	if header != want {
		t.Fatalf("Sign = %q, want %q", header, want)
	}
	ts, sigs, err := ParseSignature(header)
	if err != nil || !ts.Equal(at) || len(sigs) != 1 {
		t.Fatalf("ParseSignature(Sign(...)) = %v, %d signatures, %v", ts, len(sigs), err)
	}
}
