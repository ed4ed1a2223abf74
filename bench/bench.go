// Package bench is million's benchmark protocol in one command (`million
// bench`): it starts the server under test and a baseline on one CPU, drives
// both from a load generator on another, alternates baseline and target
// rounds and reports each scenario's throughput ratio as the median and the
// range over the rounds, with the latency of each side at half its own
// capacity.
//
// The method, for every scenario and round:
//
//  1. Capacity: a closed-loop probe. Every connection of the generator sends
//     its next request as soon as the previous answer is in, for the
//     duration; successful answers per second are the side's throughput at
//     saturation. (pgbench, the PostgreSQL baseline, measures itself the
//     same way: -c clients, no rate limit.)
//  2. Latency: an open-model run (package loadgen: fixed arrival rate,
//     latency from the intended send time, HDR histograms) at half the
//     throughput the probe just found, for the duration.
//  3. The ratio is target throughput over baseline throughput within the
//     round; the report gives the median ratio over the rounds and its
//     min–max.
//
// The side not being measured is stopped (SIGSTOP) so its background work
// cannot take the measured side's CPU. While each side runs, the bench
// samples how busy the server CPU and the generator CPU were, and the CPU
// time of the server's own processes and of the generator: a server CPU
// well below 100 % at saturation means something else, such as the
// generator, was the limit; a busy server CPU of which the server had only
// a part means other programs took the rest. The report says both, and
// gives a second ratio, of answers per second of the server's own CPU
// time, which such neighbours disturb less.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one run of the bench.
type Config struct {
	// Binary is the million executable the servers, the seeding and the
	// bare baseline are started from (os.Executable): the bench drives
	// million through its command line, as an operator would.
	Binary    string
	Scenarios []string // names from Scenarios; "all" for every one
	Rounds    int
	Duration  time.Duration // of each measured run (the probe, and the run at half rate)
	Warmup    time.Duration // of each side, before the first round
	// Connections is the generator's connections to an HTTP server: the
	// concurrency of the closed-loop probe and the most requests in flight
	// of the open-model run.
	Connections int
	// PgbenchClients is pgbench's -c, and its scale factor (-s), so that
	// TPC-B's branch rows are not an artificial bottleneck.
	PgbenchClients int
	Products       int // seeded products
	Users          int // seeded users (the checkout scenario logs in CartUsers of them)
	CartUsers      int // checkout scenario: users logged in, each with a cart
	PeakUsers      int // peak scenario: seeded users
	PeakRate       float64
	// CacheRate is the arrival rate of the cache-effect scenario: a
	// moderate one, which million with its cache off sustains without
	// errors, so both sides answer the same requests.
	CacheRate float64
	// WorkDir keeps the seeded databases between runs when set; otherwise
	// a temporary directory is used and removed.
	WorkDir string
	// CPUProfiles, when set, is the directory that gets million's CPU
	// profile (pprof, from its admin listener) over the first measured run
	// of the peak, pg-checkout and HTTP-versus-bare scenarios (the capacity
	// probe), as <scenario>.pprof.
	CPUProfiles string
	Pins        Pins
	// Command is the command line, for the report.
	Command string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Defaults of zero Config fields.
const (
	DefaultRounds         = 3
	DefaultDuration       = 10 * time.Second
	DefaultWarmup         = 3 * time.Second
	DefaultConnections    = 64
	DefaultPgbenchClients = 16
	DefaultProducts       = 100_000
	DefaultUsers          = 10_000
	DefaultCartUsers      = 1_000
	DefaultPeakUsers      = 1_000_000
	DefaultPeakRate       = 10_000
	DefaultCacheRate      = 200
)

func (c *Config) defaults() error {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.Rounds, DefaultRounds)
	set(&c.Connections, DefaultConnections)
	set(&c.PgbenchClients, DefaultPgbenchClients)
	set(&c.Products, DefaultProducts)
	set(&c.Users, DefaultUsers)
	set(&c.CartUsers, DefaultCartUsers)
	set(&c.PeakUsers, DefaultPeakUsers)
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.PeakRate <= 0 {
		c.PeakRate = DefaultPeakRate
	}
	if c.CacheRate <= 0 {
		c.CacheRate = DefaultCacheRate
	}
	if c.CartUsers > c.Users {
		c.CartUsers = c.Users
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Binary == "" {
		return errors.New("bench: no million binary to start the servers from")
	}
	return nil
}

// Selected resolves the scenario names of the command line ("all" is every
// scenario) in the order given, or says which name is unknown.
func Selected(names []string) ([]Scenario, error) {
	var out []Scenario
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "all" {
			return slices.Clone(Scenarios), nil
		}
		i := slices.IndexFunc(Scenarios, func(s Scenario) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q: choose among %s, or all", n, strings.Join(ScenarioNames(), ", "))
		}
		if !slices.ContainsFunc(out, func(s Scenario) bool { return s.Name == n }) {
			out = append(out, Scenarios[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return out, nil
}

// ScenarioNames lists the scenarios' names.
func ScenarioNames() []string {
	names := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		names[i] = s.Name
	}
	return names
}

// Result is a whole run, as written to JSON.
type Result struct {
	Command  string `json:"command"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	// CommitSource says where Commit comes from: "binary" (the build's VCS
	// stamp) or "working tree" (git in the current directory, when the
	// binary was built with -buildvcs=false).
	CommitSource string           `json:"commit_source,omitempty"`
	GoVersion    string           `json:"go_version"`
	Start        time.Time        `json:"start"`
	End          time.Time        `json:"end"`
	Host         string           `json:"host,omitempty"`
	NumCPU       int              `json:"num_cpu"`
	Pins         Pins             `json:"pins"`
	Rounds       int              `json:"rounds"`
	DurationS    float64          `json:"duration_s"`
	WarmupS      float64          `json:"warmup_s"`
	Connections  int              `json:"connections"`
	Scenarios    []ScenarioResult `json:"scenarios"`
}

// ScenarioResult is one scenario over every round.
type ScenarioResult struct {
	Name     string `json:"name"`
	What     string `json:"what"`     // the request measured
	Stage    string `json:"stage"`    // million's configuration
	Data     string `json:"data"`     // data size
	Baseline string `json:"baseline"` // what it is compared with; "" when nothing
	Target   string `json:"target"`   // what bench.md asks of it
	// Load is the concurrency or rate of each side.
	Load  string   `json:"load"`
	Notes []string `json:"notes,omitempty"`
	// NotesInDocs puts the notes in the scenario's row of the benchmarks
	// document too: what each side had on (gateway), which statements the
	// cache leaves (cache-effect).
	NotesInDocs bool    `json:"notes_in_docs,omitempty"`
	Rounds      []Round `json:"rounds"`
	// Ratio is million's throughput over the baseline's, per round, unless
	// RatioOf names another figure (cache-effect: database queries per
	// request, cache on over cache off).
	Ratio   Stat   `json:"ratio"`
	RatioOf string `json:"ratio_of,omitempty"`
	// CPURatio is the same for answers per second of the server's own CPU
	// time (OKPerServerCPUSecond): on a shared machine, where neighbours
	// take a varying part of the server CPU, it is the steadier figure.
	CPURatio           Stat `json:"ratio_per_server_cpu_second"`
	Throughput         Stat `json:"throughput_rps"`
	BaselineThroughput Stat `json:"baseline_throughput_rps"`
	// P99 is million's p99 latency (ms) at half its own throughput;
	// BaselineP99 the baseline's at half its own, when measured.
	P99         Stat `json:"p99_ms"`
	BaselineP99 Stat `json:"baseline_p99_ms"`
	// SendLagP99 and BaselineSendLagP99 are the p99 of how late requests
	// were sent during those runs (Latency.SendLagP99), which is part of
	// the latency.
	SendLagP99         Stat  `json:"send_lag_p99_ms"`
	BaselineSendLagP99 Stat  `json:"baseline_send_lag_p99_ms"`
	Errors             int64 `json:"errors"`          // million's, over every measured run
	BaselineErrors     int64 `json:"baseline_errors"` // the baseline's
	// DBQueriesPerRequest and BaselineDBQueriesPerRequest sum up the
	// sides' Side.DBQueriesPerRequest, where measured (fixed-rate runs).
	DBQueriesPerRequest         Stat `json:"db_queries_per_request"`
	BaselineDBQueriesPerRequest Stat `json:"baseline_db_queries_per_request"`
	// Limits qualify a side's figures, each starting with the side's name:
	// its server CPU was not saturated during a probe, and what was the
	// limit instead (the generator, making the throughput a lower bound,
	// or something else: too few clients, the disk, locks); other programs
	// took part of its server CPU; or the generator was busy or crowded
	// out during its latency run, so the latencies include its delay.
	Limits []string `json:"limits,omitempty"`
	Err    string   `json:"error,omitempty"` // why the scenario did not finish

	// ratio is a round's Ratio when it is not the throughputs': set by the
	// scenario before compare, with RatioOf.
	ratio func(target, baseline *Side) (float64, bool)
}

// Round is one baseline run and one target run, measured back to back.
type Round struct {
	N        int      `json:"n"`
	Baseline *Side    `json:"baseline,omitempty"`
	Target   *Side    `json:"target,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
}

// Side is one side's figures in one round.
type Side struct {
	Name    string `json:"name"`
	Command string `json:"command,omitempty"` // an external baseline's command line
	// ThroughputRPS is successful answers (or pgbench transactions) per
	// second at saturation; for a fixed-rate scenario, at that rate.
	ThroughputRPS float64 `json:"throughput_rps"`
	OK            int64   `json:"ok"`
	Errors        int64   `json:"errors"`
	DurationS     float64 `json:"duration_s"`
	ErrorSample   string  `json:"error_sample,omitempty"`
	// ServerCPU and GeneratorCPU are how busy the two CPUs were during the
	// saturation run (0..1); absent when unknown.
	ServerCPU    *float64 `json:"server_cpu_busy,omitempty"`
	GeneratorCPU *float64 `json:"generator_cpu_busy,omitempty"`
	// ServerProcesses is the share of one CPU the server's own processes
	// used (million or the bare server, and PostgreSQL's when it takes
	// part), GeneratorProcess the generator's (or pgbench's): on a shared
	// machine the rest of a busy CPU went to other programs.
	ServerProcesses  *float64 `json:"server_processes_cpu,omitempty"`
	GeneratorProcess *float64 `json:"generator_process_cpu,omitempty"`
	// ServerCPUSeconds is the CPU time of the server's processes over the
	// capacity run, and OKPerServerCPUSecond the successful answers per
	// second of it: the cost of an answer, which other programs taking
	// part of the CPU do not change as much as the throughput.
	ServerCPUSeconds     float64  `json:"server_cpu_seconds,omitempty"`
	OKPerServerCPUSecond float64  `json:"ok_per_server_cpu_second,omitempty"`
	Latency              *Latency `json:"latency,omitempty"`
	// RSSPeakBytes and DBQueriesPerRequest come from million's own metrics
	// over a fixed-rate run, ServerRequests being the requests it counted
	// (0: not measured, so a DBQueriesPerRequest of 0 means no query).
	RSSPeakBytes        float64 `json:"rss_peak_bytes,omitempty"`
	ServerRequests      float64 `json:"server_requests,omitempty"`
	DBQueriesPerRequest float64 `json:"db_queries_per_request,omitempty"`
	// DBQueriesByStatement is the database statements run over that run,
	// by statement ("select products"), when the scenario looks at them.
	DBQueriesByStatement map[string]float64 `json:"db_queries_by_statement,omitempty"`
	// CacheHitRatio is the share of million's L1 cache lookups that hit
	// during the capacity run, when its cache was on.
	CacheHitRatio *float64 `json:"l1_cache_hit_ratio,omitempty"`
	// FixedRate marks a side run at a fixed arrival rate rather than
	// saturated: its server CPU need not be busy.
	FixedRate bool `json:"fixed_rate,omitempty"`
}

// Latency is an open-model run at a fixed arrival rate; times in ms from
// each request's intended send time.
type Latency struct {
	RateRPS   float64          `json:"rate_rps"`
	DurationS float64          `json:"duration_s"`
	Scheduled int64            `json:"scheduled"` // arrivals that fell due
	Completed int64            `json:"completed"`
	Errors    int64            `json:"errors"` // failed answers, timeouts and dropped arrivals
	ByStatus  map[string]int64 `json:"errors_by_status,omitempty"`
	P50       float64          `json:"p50_ms"`
	P90       float64          `json:"p90_ms"`
	P99       float64          `json:"p99_ms"`
	P999      float64          `json:"p99_9_ms"`
	Max       float64          `json:"max_ms"`
	// SendLagP99 is how late requests were sent: the generator's own
	// delay, plus, for the Late ones, the wait for a free connection
	// while every connection had a request in flight. A high lag with no
	// late arrivals means the generator lacked CPU.
	SendLagP99 float64 `json:"send_lag_p99_ms"`
	Late       int64   `json:"late"`
	// GeneratorCPU is how busy the generator's CPU was during the run,
	// GeneratorProcess how much of it the generator used: near 100 % its
	// own delay is part of these latencies; well under a busy CPU, other
	// programs took the rest and waiting for them is.
	GeneratorCPU     *float64 `json:"generator_cpu_busy,omitempty"`
	GeneratorProcess *float64 `json:"generator_process_cpu,omitempty"`
}

// side is what a round measures: the server under test or a baseline.
type side interface {
	// warm runs it for d without recording anything.
	warm(ctx context.Context, d time.Duration) error
	// measure is one round's run: throughput at saturation and latency at
	// half of it (or, for a fixed-rate side, both at that rate).
	measure(ctx context.Context, d time.Duration) (*Side, error)
	// pause and resume stop and continue its server while the other side
	// is measured.
	pause()
	resume()
}

// Run runs the selected scenarios one after the other and returns what they
// measured. A scenario that fails is recorded with its error and the next
// one runs; Run returns an error only when none could run or ctx ended.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	scenarios, err := Selected(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	res := &Result{Command: cfg.Command, GoVersion: runtime.Version(), Start: time.Now().UTC(), NumCPU: onlineCPUs(),
		Pins: cfg.Pins, Rounds: cfg.Rounds, DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
		Connections: cfg.Connections}
	res.Host, _ = os.Hostname()
	res.Commit, res.Modified, res.CommitSource = buildCommit(ctx)

	r := &runner{cfg: cfg, log: cfg.Log}
	removeStale(r.logf)
	if cfg.WorkDir != "" {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return nil, err
		}
		r.dir = cfg.WorkDir
	} else {
		if r.dir, err = tempDir("work-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(r.dir)
	}
	defer r.close()

	for _, sc := range scenarios {
		sr := ScenarioResult{Name: sc.Name, What: sc.What, Stage: sc.Stage + accessLogOff, Baseline: sc.Baseline, Target: sc.Target}
		r.logf("\n== %s: %s — %s", sc.Name, sc.What, sc.Stage)
		if err := sc.run(ctx, r, &sr); err != nil {
			sr.Err = err.Error()
			r.logf("%s failed: %v", sc.Name, err)
		}
		sr.summarize()
		res.Scenarios = append(res.Scenarios, sr)
		if ctx.Err() != nil {
			res.End = time.Now().UTC()
			return res, ctx.Err()
		}
	}
	res.End = time.Now().UTC()
	return res, nil
}

// tempPrefix starts the names of the temporary directories of a run (its
// work directory, its PostgreSQL cluster), each holding ownerFile.
const (
	tempPrefix = "million-bench-"
	ownerFile  = "owner.pid"
)

// tempDir creates a temporary directory owned by this process, named
// tempPrefix+kind+random.
func tempDir(kind string) (string, error) {
	dir, err := os.MkdirTemp("", tempPrefix+kind)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeStale removes the temporary directories of benches that were
// killed before they could (their servers died with them: see
// startServer). A directory goes only when its owner file names a process
// that no longer exists, and, for a cluster, when its postmaster is gone.
func removeStale(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, dir := range dirs {
		if !deadOwner(filepath.Join(dir, ownerFile)) || !deadOwner(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			logf("removed %s, left by a bench that was killed", dir)
		}
	}
}

// deadOwner says whether the pid on the first line of file is a process
// that is gone; a missing file counts as gone only for a postmaster.pid.
func deadOwner(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return errors.Is(err, os.ErrNotExist) && filepath.Base(file) == "postmaster.pid"
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// buildCommit is the VCS revision the binary was built from or, when the
// build carries none (-buildvcs=false), the one of the git working tree the
// bench runs in, with its uncommitted changes (untracked files included).
func buildCommit(ctx context.Context) (commit string, modified bool, source string) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if commit != "" {
		return commit, modified, "binary"
	}
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false, ""
	}
	status, err := exec.CommandContext(ctx, "git", "status", "--porcelain").Output()
	return strings.TrimSpace(string(out)), err != nil || len(bytes.TrimSpace(status)) > 0, "working tree"
}

// onlineCPUs is the machine's CPU count, not the ones this pinned process
// may use (runtime.NumCPU).
func onlineCPUs() int {
	if n := len(readCPUTimes()); n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// runner holds what the scenarios of one run share: the work directory,
// seeded databases and the PostgreSQL cluster.
type runner struct {
	cfg Config
	log io.Writer
	dir string
	pg  *pgSetup // started by the first scenario that needs it
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, format+"\n", args...)
}

func (r *runner) close() {
	if r.pg != nil {
		if err := r.pg.cluster.stop(); err != nil {
			r.logf("stop PostgreSQL: %v", err)
		}
	}
}

// compare warms both sides up, then runs the rounds, baseline first in
// each. baseline may be nil (a scenario with an absolute target).
func (r *runner) compare(ctx context.Context, res *ScenarioResult, baseline, target side) error {
	sides := []side{target}
	if baseline != nil {
		sides = []side{baseline, target}
	}
	only, resumeAll, err := r.warmUp(ctx, sides)
	defer resumeAll()
	if err != nil {
		return err
	}
	for i := 1; i <= r.cfg.Rounds; i++ {
		round := Round{N: i}
		for _, s := range sides {
			only(s)
			m, err := s.measure(ctx, r.cfg.Duration)
			if m != nil {
				r.logf("  round %d  %s", i, m.line())
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i, sideName(m), err)
			}
			if s == baseline {
				round.Baseline = m
			} else {
				round.Target = m
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r.roundRatio(res, &round)
		res.Rounds = append(res.Rounds, round)
	}
	return nil
}

// warmUp warms each side up in turn, and returns only, which lets one side
// run with the others paused (so their timers and background work take
// nothing from it on the shared CPU), and resumeAll, for the caller to defer.
func (r *runner) warmUp(ctx context.Context, sides []side) (only func(side), resumeAll func(), err error) {
	only = func(s side) {
		for _, o := range sides {
			if o != s {
				o.pause()
			}
		}
		s.resume()
	}
	resumeAll = func() {
		for _, s := range sides {
			s.resume()
		}
	}
	if r.cfg.Warmup > 0 {
		for _, s := range sides {
			only(s)
			if err := s.warm(ctx, r.cfg.Warmup); err != nil {
				return only, resumeAll, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	return only, resumeAll, nil
}

// roundRatio sets the round's ratio: target over baseline throughput, or
// the scenario's own figure.
func (r *runner) roundRatio(res *ScenarioResult, round *Round) {
	if round.Baseline == nil || round.Target == nil {
		return
	}
	ratio := res.ratio
	if ratio == nil {
		ratio = throughputRatio
	}
	if x, ok := ratio(round.Target, round.Baseline); ok {
		round.Ratio = &x
		r.logf("  round %d  ratio %.2f", round.N, x)
	}
}

func throughputRatio(target, baseline *Side) (float64, bool) {
	if baseline.ThroughputRPS <= 0 {
		return 0, false
	}
	return target.ThroughputRPS / baseline.ThroughputRPS, true
}

func sideName(m *Side) string {
	if m == nil {
		return "a side"
	}
	return m.Name
}

// line is a side's round as the progress log shows it.
func (m *Side) line() string {
	s := fmt.Sprintf("%-28s %9s/s", m.Name, fmtRate(m.ThroughputRPS))
	if m.ServerCPU != nil {
		s += "  server CPU " + fmtPct(*m.ServerCPU)
	}
	if m.ServerProcesses != nil {
		s += " (itself " + fmtPct(*m.ServerProcesses) + ")"
	}
	if m.GeneratorCPU != nil {
		s += "  generator CPU " + fmtPct(*m.GeneratorCPU)
	}
	if m.GeneratorProcess != nil {
		s += " (itself " + fmtPct(*m.GeneratorProcess) + ")"
	}
	if !m.FixedRate {
		s += fmt.Sprintf("  errors %d", m.Errors)
	}
	if l := m.Latency; l != nil {
		s += fmt.Sprintf("  | at %s/s: p50 %s p99 %s p99.9 %s max %s, send lag p99 %s (%d late), errors %d",
			fmtRate(l.RateRPS), fmtMs(l.P50), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), fmtMs(l.SendLagP99), l.Late, l.Errors)
	}
	if m.ErrorSample != "" {
		s += "  (e.g. " + m.ErrorSample + ")"
	}
	return s
}

// saturatedCPU is how busy a CPU must be during a probe to count as the
// limit.
const saturatedCPU = 0.90

// sharedCPU is the share of the server CPU the server's processes must
// have had during a probe for the report not to name other programs as
// having taken the rest.
const sharedCPU = 0.80

// summarize fills the stats from the rounds.
func (sr *ScenarioResult) summarize() {
	var tt, bt, tp, bp, tl, bl, tq, bq, ratios, cpuRatios []float64
	limits := map[string]string{} // side name (+ " latency") → what qualified its figures first
	limit := func(m *Side, round int) {
		if _, seen := limits[m.Name]; seen || m.ServerCPU == nil {
			return
		}
		if *m.ServerCPU >= saturatedCPU {
			if m.ServerProcesses != nil && *m.ServerProcesses < sharedCPU {
				see := " (see the ratio per server CPU-second)"
				if m.FixedRate {
					see = ""
				}
				limits[m.Name] = fmt.Sprintf("%s: its server processes had only %s of the server CPU in round %d; other programs on the machine took the rest%s",
					m.Name, fmtPct(*m.ServerProcesses), round, see)
			}
			return
		}
		if m.FixedRate {
			return // below its capacity, as it should be
		}
		what := "something else (too few connections or clients, the disk, locks)"
		if m.GeneratorCPU != nil && *m.GeneratorCPU >= saturatedCPU {
			what = "the generator, so this throughput is a lower bound"
		}
		limits[m.Name] = fmt.Sprintf("%s: server CPU %s busy at saturation in round %d: the limit was %s",
			m.Name, fmtPct(*m.ServerCPU), round, what)
	}
	latencyLimit := func(m *Side, round int) {
		key := m.Name + " latency"
		l := m.Latency
		if _, seen := limits[key]; seen || l == nil || l.GeneratorProcess == nil {
			return
		}
		if l.Late > l.Scheduled/2 {
			// Most arrivals waited for a connection: the server, not the
			// generator, set the pace, whoever else used the CPU.
			return
		}
		switch gen := *l.GeneratorProcess; {
		case gen >= saturatedCPU:
			limits[key] = fmt.Sprintf("%s at %s/s (round %d): the generator used %s of its CPU, so the latencies include its own delay (send lag p99 %s)",
				m.Name, fmtRate(l.RateRPS), round, fmtPct(gen), fmtMs(l.SendLagP99))
		case l.GeneratorCPU != nil && *l.GeneratorCPU >= saturatedCPU && gen < sharedCPU:
			limits[key] = fmt.Sprintf("%s at %s/s (round %d): other programs took %s of the generator's CPU, so the latencies include waiting for it (send lag p99 %s)",
				m.Name, fmtRate(l.RateRPS), round, fmtPct(*l.GeneratorCPU-gen), fmtMs(l.SendLagP99))
		}
	}
	for _, rd := range sr.Rounds {
		for _, m := range []*Side{rd.Baseline, rd.Target} {
			if m != nil {
				latencyLimit(m, rd.N)
			}
		}
		if m := rd.Target; m != nil {
			tt = append(tt, m.ThroughputRPS)
			tp = append(tp, p99(m))
			tl = append(tl, sendLag(m))
			sr.Errors += m.Errors + latencyErrors(m)
			tq = append(tq, queries(m))
			limit(m, rd.N)
		}
		if m := rd.Baseline; m != nil {
			bt = append(bt, m.ThroughputRPS)
			bp = append(bp, p99(m))
			bl = append(bl, sendLag(m))
			sr.BaselineErrors += m.Errors + latencyErrors(m)
			bq = append(bq, queries(m))
			limit(m, rd.N)
		}
		if rd.Ratio != nil {
			ratios = append(ratios, *rd.Ratio)
		}
		if rd.Target != nil && rd.Baseline != nil && rd.Target.OKPerServerCPUSecond > 0 && rd.Baseline.OKPerServerCPUSecond > 0 {
			cpuRatios = append(cpuRatios, rd.Target.OKPerServerCPUSecond/rd.Baseline.OKPerServerCPUSecond)
		}
	}
	sr.Throughput, sr.BaselineThroughput = Summarize(tt), Summarize(bt)
	sr.P99, sr.BaselineP99 = Summarize(tp), Summarize(bp)
	sr.SendLagP99, sr.BaselineSendLagP99 = Summarize(tl), Summarize(bl)
	sr.Ratio, sr.CPURatio = Summarize(ratios), Summarize(cpuRatios)
	sr.DBQueriesPerRequest, sr.BaselineDBQueriesPerRequest = Summarize(tq), Summarize(bq)
	sr.Limits = nil
	for _, l := range limits {
		sr.Limits = append(sr.Limits, l)
	}
	slices.Sort(sr.Limits)
}

func p99(m *Side) float64 {
	if m.Latency == nil {
		return math.NaN()
	}
	return m.Latency.P99
}

// queries is a side's database queries per request, NaN when not
// measured (a closed-loop side, or a server without metrics).
func queries(m *Side) float64 {
	if m.ServerRequests <= 0 {
		return math.NaN()
	}
	return m.DBQueriesPerRequest
}

func sendLag(m *Side) float64 {
	if m.Latency == nil {
		return math.NaN()
	}
	return m.Latency.SendLagP99
}

func latencyErrors(m *Side) int64 {
	if m.Latency == nil {
		return 0
	}
	return m.Latency.Errors
}

// accessLogOff is said in every scenario's configuration: million serve
// runs with --no-access-log.
const accessLogOff = "; access log off"

// millionCmd runs a million subcommand as a child: seeding, migrations.
// Its MILLION_* environment is left out, so that the caller's settings
// (a MILLION_DATABASE_URL, say) cannot change what the bench measures.
func (r *runner) millionCmd(ctx context.Context, logName string, args ...string) error {
	cmd := exec.CommandContext(ctx, r.cfg.Binary, args...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(r.dir, logName+".log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("million %s: %w\n%s", args[0], err, tailLines(string(out), 20))
	}
	return nil
}

// childEnv is this process's environment without MILLION_* settings, plus
// GOMAXPROCS=1 for the servers.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MILLION_") && !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	return append(env, "GOMAXPROCS=1")
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// seedSQLite seeds (or, in a kept work directory, tops up) an embedded
// database with users and products and returns its data directory.
func (r *runner) seedSQLite(ctx context.Context, users, products int) (string, error) {
	dir := filepath.Join(r.dir, "sqlite-"+strconv.Itoa(products)+"p-"+strconv.Itoa(users)+"u")
	start := time.Now()
	r.logf("seeding %s users and %s products into %s", thousands(int64(users)), thousands(int64(products)), dir)
	if err := r.millionCmd(ctx, "seed-sqlite", "seed", "--data-dir", dir,
		"--users", strconv.Itoa(users), "--products", strconv.Itoa(products)); err != nil {
		return "", err
	}
	r.logf("seeded in %s", time.Since(start).Round(10*time.Millisecond))
	return dir, nil
}

// startMillion starts million serve on the server CPU with the given
// storage flags, the access log off (accessLogOff: as the peer was
// measured with its request log off), the admin listener on for metrics
// and request rate limits off.
func (r *runner) startMillion(ctx context.Context, logName string, flags ...string) (*server, error) {
	args := append([]string{"serve"}, flags...)
	args = append(args, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--no-access-log", "--log-level", "info",
		// One generator address stands for many clients here, and the
		// bench measures capacity, not the per-client limit policy.
		"--rate-limit-ip", "0", "--rate-limit-user", "0")
	cmd := r.cfg.Pins.command(r.cfg.Pins.ServerCPU, r.cfg.Binary, args...)
	return startServer(ctx, "million serve", cmd, filepath.Join(r.dir, logName+".log"), "/readyz")
}

// startBare starts the bare baseline serving c on the server CPU.
func (r *runner) startBare(ctx context.Context, name string, c *Capture) (*server, error) {
	file := filepath.Join(r.dir, name+"-capture.json")
	if err := writeJSON(file, c); err != nil {
		return nil, err
	}
	cmd := r.cfg.Pins.command(r.cfg.Pins.ServerCPU, r.cfg.Binary, "bench", "--serve-bare", file, "--bare-addr", "127.0.0.1:0")
	return startServer(ctx, "bare net/http", cmd, filepath.Join(r.dir, name+"-bare.log"), "")
}
