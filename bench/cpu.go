package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pins says where the servers and the generator run. The protocol puts the
// server under test (and PostgreSQL, when used) on one CPU and the load
// generator on another, so that neither steals the other's time and the
// server's throughput is what one core gives.
type Pins struct {
	// Pinned is false when the machine cannot pin (no taskset, one CPU, or
	// the CPUs asked for are not available to us); Note says why, and every
	// figure is then measured unpinned.
	Pinned       bool   `json:"pinned"`
	ServerCPU    int    `json:"server_cpu"`
	GeneratorCPU int    `json:"generator_cpu"`
	Note         string `json:"note,omitempty"`
	// GeneratorProcs is GOMAXPROCS of the generator: 1 when it is pinned
	// to one CPU, since the Go runtime counts only the CPUs it may use.
	GeneratorProcs int `json:"generator_gomaxprocs"`
}

// EnvPinned marks a bench process that was re-executed under taskset, so
// that it does not try again.
const EnvPinned = "MILLION_BENCH_PINNED"

// Pin puts this process on the generator CPU. The Go runtime sizes
// GOMAXPROCS from the CPUs the process may use when it starts, and
// runtime.LockOSThread pins one goroutine, not the runtime's other threads,
// so the only way to pin a running Go program whole is to start it again
// pinned: Pin re-executes the binary under `taskset -c generatorCPU` with
// the same arguments (the process keeps its pid), and the new process,
// finding itself on that CPU alone, carries on. The servers are started
// later with `taskset -c serverCPU`, which may leave the generator's CPU.
//
// When the machine cannot pin, Pin returns Pins with Pinned false and a
// note, and the bench runs unpinned. It returns only when no re-execution
// happened.
func Pin(serverCPU, generatorCPU int, exe string, args []string) Pins {
	p := Pins{ServerCPU: serverCPU, GeneratorCPU: generatorCPU, GeneratorProcs: runtime.GOMAXPROCS(0)}
	allowed, err := allowedCPUs()
	if err != nil {
		p.Note = "cannot read this process's CPU affinity (" + err.Error() + "): running unpinned"
		return p
	}
	if len(allowed) == 1 && allowed[0] == generatorCPU {
		p.Pinned = true
		return p
	}
	if os.Getenv(EnvPinned) != "" {
		p.Note = fmt.Sprintf("re-executed under taskset but still allowed on CPUs %v: running unpinned", allowed)
		return p
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		p.Note = "taskset is not installed (Debian: apt-get install util-linux): running unpinned, so the server and the generator share the CPUs"
		return p
	}
	if why := canPin(allowed, serverCPU, generatorCPU); why != "" {
		p.Note = why + ": running unpinned, so the server and the generator share the CPUs"
		return p
	}
	taskset, _ := exec.LookPath("taskset")
	argv := append([]string{"taskset", "-c", strconv.Itoa(generatorCPU), exe}, args[1:]...)
	err = syscall.Exec(taskset, argv, append(os.Environ(), EnvPinned+"=1"))
	// Exec returns only when it failed.
	p.Note = "re-executing under taskset failed (" + err.Error() + "): running unpinned"
	return p
}

// canPin says why the two CPUs cannot be used when the process may run on
// allowed, or "".
func canPin(allowed []int, serverCPU, generatorCPU int) string {
	if len(allowed) < 2 {
		return fmt.Sprintf("only %d CPU is available", len(allowed))
	}
	if serverCPU == generatorCPU {
		return fmt.Sprintf("the server and the generator were both given CPU %d", serverCPU)
	}
	for _, c := range []int{serverCPU, generatorCPU} {
		found := false
		for _, a := range allowed {
			found = found || a == c
		}
		if !found {
			return fmt.Sprintf("CPU %d is not among the CPUs available (%v)", c, allowed)
		}
	}
	return ""
}

// allowedCPUs reads the CPUs this process may run on from
// /proc/self/status (Cpus_allowed_list: "0-1", "0,2-3").
func allowedCPUs() ([]int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil, errors.New("no Cpus_allowed_list in /proc/self/status")
}

// parseCPUList reads the kernel's CPU list format: "0-3,8,10-11".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// command returns the command that runs name with args on cpu: under
// taskset when pinned, plainly otherwise.
func (p Pins) command(cpu int, name string, args ...string) *exec.Cmd {
	if !p.Pinned {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
}

// Describe is the pins as the report prints them.
func (p Pins) Describe() string {
	if !p.Pinned {
		return fmt.Sprintf("NOT PINNED (%s); servers GOMAXPROCS=1, generator GOMAXPROCS=%d", p.Note, p.GeneratorProcs)
	}
	return fmt.Sprintf("server (and PostgreSQL) on CPU %d (taskset -c %d, GOMAXPROCS=1), generator on CPU %d (taskset -c %d, GOMAXPROCS=%d)",
		p.ServerCPU, p.ServerCPU, p.GeneratorCPU, p.GeneratorCPU, p.GeneratorProcs)
}

// cpuTimes is the time each CPU spent busy and in all, in clock ticks,
// from /proc/stat.
type cpuTimes map[int]cpuTime

type cpuTime struct{ busy, total uint64 }

func readCPUTimes() cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := cpuTimes{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("cpu")) || len(line) < 4 || line[3] < '0' || line[3] > '9' {
			continue
		}
		fields := strings.Fields(string(line))
		cpu, err := strconv.Atoi(strings.TrimPrefix(fields[0], "cpu"))
		if err != nil || len(fields) < 8 {
			continue
		}
		var t cpuTime
		// user nice system idle iowait irq softirq steal ...; guest time is
		// already counted in user.
		for i, f := range fields[1:min(len(fields), 9)] {
			v, _ := strconv.ParseUint(f, 10, 64)
			t.total += v
			if i != 3 && i != 4 { // idle, iowait
				t.busy += v
			}
		}
		out[cpu] = t
	}
	return out
}

// procCPU is the CPU time process pid has used so far, in clock ticks (the
// unit of /proc/stat), or -1 when unknown; pid 0 means this process.
func procCPU(pid int) int64 {
	st, ok := readProcStat(pid)
	if !ok {
		return -1
	}
	return st.utime + st.stime
}

// treeCPU is the CPU time, in clock ticks, of the processes rooted at the
// given pids: each one, the children it has reaped (a PostgreSQL backend's
// time goes to the postmaster when it exits) and its live children. It is
// what the servers of one side cost, whatever the other programs on the
// machine take from the same CPU. -1 when unknown.
func treeCPU(pids ...int) int64 {
	var total int64
	for _, pid := range pids {
		st, ok := readProcStat(pid)
		if !ok {
			return -1
		}
		total += st.utime + st.stime + st.cutime + st.cstime
		for _, child := range childPids(pid) {
			if c, ok := readProcStat(child); ok {
				total += c.utime + c.stime + c.cutime + c.cstime
			}
		}
	}
	return total
}

// procStat holds the CPU times of /proc/<pid>/stat, in clock ticks.
type procStat struct{ utime, stime, cutime, cstime int64 }

func readProcStat(pid int) (procStat, bool) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, false
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime, stime, cutime and cstime are fields 14-17.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	var v [4]int64
	for k := range v {
		n, err := strconv.ParseInt(f[11+k], 10, 64)
		if err != nil {
			return procStat{}, false
		}
		v[k] = n
	}
	return procStat{v[0], v[1], v[2], v[3]}, true
}

// childPids lists the live children of pid, from each of its threads'
// /proc/<pid>/task/<tid>/children.
func childPids(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// procShare is the share of one CPU used between two procCPU or treeCPU
// samples taken elapsed apart, or nil when unknown.
func procShare(before, after int64, elapsed time.Duration) *float64 {
	if before < 0 || after < before || elapsed <= 0 {
		return nil
	}
	x := float64(after-before) / clockTicks / elapsed.Seconds()
	return &x
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// meter measures what a run cost, over one or more spans (the checkout
// phases): how busy the server and generator CPUs were, and the CPU time
// of the server's processes and of the generator itself.
type meter struct {
	roots []int // the server's processes: million, the bare server, the postmaster

	perCPU      map[int]cpuTime // ticks per CPU over the spans
	server, gen int64           // ticks; -1 once a sample failed
	wall        time.Duration

	// The span in progress.
	cpus       cpuTimes
	srv0, gen0 int64
	t0         time.Time
}

func newMeter(roots ...int) *meter { return &meter{roots: roots, perCPU: map[int]cpuTime{}} }

// start begins a span.
func (m *meter) start() {
	m.cpus, m.srv0, m.gen0, m.t0 = readCPUTimes(), treeCPU(m.roots...), procCPU(0), time.Now()
}

// stop ends the span begun by start.
func (m *meter) stop() {
	m.wall += time.Since(m.t0)
	for cpu, v := range readCPUTimes() {
		if a, ok := m.cpus[cpu]; ok {
			acc := m.perCPU[cpu]
			acc.busy += v.busy - a.busy
			acc.total += v.total - a.total
			m.perCPU[cpu] = acc
		}
	}
	add := func(sum *int64, before, after int64) {
		if *sum < 0 || before < 0 || after < before {
			*sum = -1
			return
		}
		*sum += after - before
	}
	add(&m.server, m.srv0, treeCPU(m.roots...))
	add(&m.gen, m.gen0, procCPU(0))
}

// report puts the figures into side, whose OK must be set. The server's
// CPU time is its processes'; it includes most of the kernel's network work
// for their traffic, which runs as softirq while they are on the CPU.
func (m *meter) report(p Pins, side *Side) {
	frac := func(cpu int) *float64 {
		acc := m.perCPU[cpu]
		if !p.Pinned || acc.total == 0 {
			return nil
		}
		x := float64(acc.busy) / float64(acc.total)
		return &x
	}
	side.ServerCPU, side.GeneratorCPU = frac(p.ServerCPU), frac(p.GeneratorCPU)
	side.ServerProcesses, side.GeneratorProcess = procShare(0, m.server, m.wall), procShare(0, m.gen, m.wall)
	if m.server > 0 {
		side.ServerCPUSeconds = float64(m.server) / clockTicks
		side.OKPerServerCPUSecond = float64(side.OK) / side.ServerCPUSeconds
	}
}
