package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want Stat
	}{
		{"none", nil, Stat{}},
		{"one round", []float64{0.42}, Stat{Median: 0.42, Min: 0.42, Max: 0.42, N: 1}},
		{"odd count takes the middle", []float64{0.9, 0.5, 0.7}, Stat{Median: 0.7, Min: 0.5, Max: 0.9, N: 3}},
		{"even count averages the middle two", []float64{4, 1, 3, 2}, Stat{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"outlier moves the range, not the median", []float64{10, 11, 1000, 12, 9}, Stat{Median: 11, Min: 9, Max: 1000, N: 5}},
		{"unmeasured rounds are left out", []float64{nan, 2, nan, 4}, Stat{Median: 3, Min: 2, Max: 4, N: 2}},
		{"only unmeasured rounds", []float64{nan}, Stat{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Summarize(tc.in); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSummarizeLeavesItsInputAlone(t *testing.T) {
	t.Parallel()
	in := []float64{3, 1, 2}
	Summarize(in)
	if !slices.Equal(in, []float64{3, 1, 2}) {
		t.Errorf("Summarize sorted its input: %v", in)
	}
}

func TestRatiosAreTakenRoundByRound(t *testing.T) {
	t.Parallel()
	// Round by round, not median over median: the median of the ratios is
	// 0.5, while the ratio of the medians would be 30/50 = 0.6.
	target := []float64{10, 30, 40}
	baseline := []float64{20, 60, 50}
	got := Ratios(target, baseline)
	want := []float64{0.5, 0.5, 0.8}
	if !slices.Equal(got, want) {
		t.Fatalf("Ratios = %v, want %v", got, want)
	}
	if s := Summarize(got); s != (Stat{Median: 0.5, Min: 0.5, Max: 0.8, N: 3}) {
		t.Errorf("median ratio = %+v", s)
	}
}

func TestRatiosWithoutABaselineAreNotMeasured(t *testing.T) {
	t.Parallel()
	got := Ratios([]float64{10, 10, math.NaN()}, []float64{0, 20, 20})
	if !math.IsNaN(got[0]) || got[1] != 0.5 || !math.IsNaN(got[2]) {
		t.Fatalf("Ratios = %v, want [NaN 0.5 NaN]", got)
	}
	if s := Summarize(got); s.N != 1 || s.Median != 0.5 {
		t.Errorf("Summarize = %+v, want one round at 0.5", s)
	}
}

func TestStatFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    Stat
		f    func(float64) string
		want string
	}{
		{Stat{}, fmtRatio, "—"},
		{Stat{Median: 0.5, Min: 0.5, Max: 0.5, N: 1}, fmtRatio, "0.50"},
		{Stat{Median: 0.52, Min: 0.487, Max: 0.551, N: 3}, fmtRatio, "0.52 (0.49–0.55)"},
		{Stat{Median: 12345.6, Min: 9999.4, Max: 1234567, N: 3}, fmtRate, "12,346 (9,999–1,234,567)"},
		{Stat{Median: 1.234, Min: 0.5, Max: 25.26, N: 3}, fmtMsNum, "1.23 (0.50–25.3)"},
	} {
		if got := tc.s.Format(tc.f); got != tc.want {
			t.Errorf("%+v.Format = %q, want %q", tc.s, got, tc.want)
		}
	}
	if got := (Stat{Median: 2, Min: 1, Max: 3, N: 3}).FormatUnit(fmtMsNum, "ms"); got != "2.00 (1.00–3.00) ms" {
		t.Errorf("FormatUnit = %q", got)
	}
	if got := (Stat{}).FormatUnit(fmtMsNum, "ms"); got != "—" {
		t.Errorf("FormatUnit of nothing = %q", got)
	}
}

func TestParseCPUList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]int{"0": {0}, "0-1": {0, 1}, "0,2-4,7": {0, 2, 3, 4, 7}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseCPUList("0-x"); err == nil {
		t.Error("parseCPUList(\"0-x\") accepted a malformed list")
	}
}

func TestCanPin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allowed        []int
		server, gen    int
		wantPinnable   bool
		wantMentioning string
	}{
		{[]int{0, 1}, 0, 1, true, ""},
		{[]int{0}, 0, 1, false, "only 1 CPU"},
		{[]int{0, 1}, 1, 1, false, "both given CPU 1"},
		{[]int{0, 1}, 0, 3, false, "CPU 3 is not among"},
	} {
		why := canPin(tc.allowed, tc.server, tc.gen)
		if (why == "") != tc.wantPinnable || !strings.Contains(why, tc.wantMentioning) {
			t.Errorf("canPin(%v, %d, %d) = %q", tc.allowed, tc.server, tc.gen, why)
		}
	}
}

func TestParsePgbench(t *testing.T) {
	t.Parallel()
	// pgbench 15's summary.
	out := `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 16
query mode: prepared
number of clients: 16
number of threads: 1
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 251234
number of failed transactions: 3 (0.001%)
latency average = 0.636 ms
initial connection time = 12.511 ms
tps = 25131.902461 (without initial connection time)
`
	tps, ok, failed, err := parsePgbench(out)
	if err != nil || tps != 25131.902461 || ok != 251234 || failed != 3 {
		t.Errorf("parsePgbench = %v, %d, %d, %v", tps, ok, failed, err)
	}
	if _, _, _, err := parsePgbench("connection to server failed"); err == nil {
		t.Error("parsePgbench accepted output without tps")
	}
}
