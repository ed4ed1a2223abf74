package payment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
)

// SignatureTolerance is how far a webhook timestamp may be from now.
const SignatureTolerance = 5 * time.Minute

// Event is a provider webhook event.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData names the payment an event is about.
type EventData struct {
	PaymentID string `json:"payment_id"`
}

// Event types and the payment status each one sets.
var eventStatus = map[string]string{
	"payment.captured": StatusCaptured,
	"payment.voided":   StatusVoided,
	"payment.refunded": StatusRefunded,
	"payment.failed":   StatusFailed,
}

// Sign returns a Payment-Signature header value for body at time t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

var errBadSignature = fault.New(fault.Invalid, "bad_signature", "the Payment-Signature header is missing, malformed or does not match")

// ParseSignature splits a Payment-Signature header ("t=<unix>,v1=<hex>[,v1=<hex>]")
// into its timestamp and candidate signatures. Several v1 values let a
// provider rotate secrets.
func ParseSignature(header string) (time.Time, [][]byte, error) {
	if header == "" || len(header) > 1024 {
		return time.Time{}, nil, errBadSignature
	}
	var (
		ts    int64
		hasTS bool
		sigs  [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return time.Time{}, nil, errBadSignature
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || hasTS || n <= 0 || n > 1<<40 {
				return time.Time{}, nil, errBadSignature
			}
			ts, hasTS = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return time.Time{}, nil, errBadSignature
			}
			sigs = append(sigs, sig)
		default:
			// Unknown schemes are ignored so providers can add new ones.
		}
	}
	if !hasTS || len(sigs) == 0 {
		return time.Time{}, nil, errBadSignature
	}
	return time.Unix(ts, 0), sigs, nil
}

// VerifySignature checks header against body with secret at time now.
func VerifySignature(secret []byte, header string, body []byte, now time.Time) error {
	t, sigs, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if d := now.Sub(t); d > SignatureTolerance || d < -SignatureTolerance {
		return fault.New(fault.Invalid, "stale_signature", "the webhook timestamp is more than 5 minutes from now")
	}
	want := mac(secret, strconv.FormatInt(t.Unix(), 10), body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return errBadSignature
}
