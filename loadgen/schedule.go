package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Stage is one step of a ramp: arrivals at Rate per second for Duration.
// A Rate of 0 is a pause.
type Stage struct {
	Rate     float64
	Duration time.Duration
}

// MarshalJSON writes the stage with its duration in seconds, which plots and
// scripts read more easily than Go's nanoseconds.
func (s Stage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Rate      float64 `json:"rate"`
		DurationS float64 `json:"duration_s"`
	}{s.Rate, s.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stage) UnmarshalJSON(b []byte) error {
	var v struct {
		Rate      float64 `json:"rate"`
		DurationS float64 `json:"duration_s"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Rate, s.Duration = v.Rate, time.Duration(v.DurationS*float64(time.Second))
	return nil
}

// String is the stage as ParseRamp reads it.
func (s Stage) String() string {
	return strconv.FormatFloat(s.Rate, 'f', -1, 64) + ":" + s.Duration.String()
}

// ParseRamp reads steps of "rate:duration" separated by commas, such as
// "100:10s,500:10s,1000:30s": 100 arrivals a second for 10 s, then 500 for
// 10 s, then 1000 for 30 s. Steps, not slopes, so each rate holds long enough
// to be measured on its own.
func ParseRamp(s string) ([]Stage, error) {
	var stages []Stage
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		rate, dur, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("ramp step %q: want rate:duration, e.g. 500:10s", part)
		}
		r, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rate), "/s"), 64)
		if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return nil, fmt.Errorf("ramp step %q: rate must be a number of arrivals per second ≥ 0", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("ramp step %q: duration must be positive, e.g. 10s", part)
		}
		stages = append(stages, Stage{Rate: r, Duration: d})
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("ramp %q has no steps", s)
	}
	return stages, nil
}

// TotalDuration is how long the stages take together.
func TotalDuration(stages []Stage) time.Duration {
	var d time.Duration
	for _, s := range stages {
		d += s.Duration
	}
	return d
}

// schedule yields the intended send time of every arrival, as an offset
// from the start of the run. The times depend on the stages alone, never on
// how fast responses come back: that independence is what makes the model
// open.
type schedule struct {
	stages []Stage
	i      int           // current stage
	k      int64         // arrivals already yielded in the current stage
	base   time.Duration // offset at which the current stage starts
}

// next returns the next arrival's offset and the index of its stage, or
// false when the schedule is over.
func (s *schedule) next() (time.Duration, int, bool) {
	for s.i < len(s.stages) {
		st := s.stages[s.i]
		if st.Rate > 0 {
			// Computed from k rather than by adding intervals, so rounding
			// never accumulates over millions of arrivals.
			off := time.Duration(float64(s.k) * float64(time.Second) / st.Rate)
			if off < st.Duration {
				s.k++
				return s.base + off, s.i, true
			}
		}
		s.base += st.Duration
		s.i++
		s.k = 0
	}
	return 0, 0, false
}

// Arrivals is how many arrivals the stages schedule in all.
func Arrivals(stages []Stage) int64 {
	var n int64
	for _, st := range stages {
		if st.Rate <= 0 {
			continue
		}
		// ceil(rate × duration), checked against next() for rounding at the edge.
		k := int64(math.Ceil(st.Rate * st.Duration.Seconds()))
		for k > 0 && time.Duration(float64(k-1)*float64(time.Second)/st.Rate) >= st.Duration {
			k--
		}
		n += k
	}
	return n
}
