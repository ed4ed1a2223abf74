package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is a throwaway PostgreSQL cluster on the server CPU, with the
// settings a fresh install has (fsync and synchronous_commit on: the
// baselines of bench.md were measured so), in a temporary directory on
// disk rather than a tmpfs, so that a commit costs what it costs on a real
// machine. Package pgtest starts clusters for tests the same way but with
// durability off, in /dev/shm, and behind testing.TB; this one is for
// measuring.
type pgCluster struct {
	bin     string // directory of the server binaries
	version string // "PostgreSQL 15.20"
	root    string
	port    int
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// findPgBin looks where package pgtest does: Debian's versioned layout
// first (the newest), then pg_config.
func findPgBin() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	best, bestV := "", 0
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(m), v
		}
	}
	if best != "" {
		return best, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		return strings.TrimSpace(string(out)), nil
	}
	return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin or pg_config --bindir (apt-get install postgresql)")
}

// pgCredential is who runs initdb and postgres: they refuse root.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, so PostgreSQL must run as the postgres OS user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres initialises a cluster and starts it on the server CPU.
func startPostgres(ctx context.Context, pins Pins, logf func(string, ...any)) (*pgCluster, error) {
	bin, err := findPgBin()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("postgres --version: %w", err)
	}
	version := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "postgres "))
	version = strings.Replace(version, "(PostgreSQL) ", "PostgreSQL ", 1)

	root, err := tempDir("pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, version: version, root: root, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			_ = c.stop()
		}
	}()
	sock := filepath.Join(root, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{Credential: cred}
	if cred != nil {
		for _, d := range []string{root, sock} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	logf("initialising %s in %s", version, root)
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C.UTF-8", "-D", filepath.Join(root, "data"))
	initdb.Dir, initdb.SysProcAttr = root, attr
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, tailLines(string(out), 20))
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(root, "postgres.log"))
	if err != nil {
		return nil, err
	}
	c.cmd = pins.command(pins.ServerCPU, filepath.Join(bin, "postgres"), "-D", filepath.Join(root, "data"),
		"-p", strconv.Itoa(c.port), "-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	c.cmd.Dir, c.cmd.Stdout, c.cmd.Stderr = root, logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	started := make(chan error, 1)
	go func() {
		// Keeps the thread the parent-death signal is tied to (see startServer).
		runtime.LockOSThread()
		defer logFile.Close()
		if err := c.cmd.Start(); err != nil {
			started <- err
			close(c.done)
			return
		}
		started <- nil
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			break
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(filepath.Join(root, "postgres.log"))
			return nil, fmt.Errorf("postgres exited during start-up (%v):\n%s", c.err, tailLines(string(b), 20))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres not accepting connections after %s: %w", startTimeout, err)
		}
	}
	ok = true
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pid is the postmaster's: taskset execs it.
func (c *pgCluster) pid() int { return c.cmd.Process.Pid }

// url is the connection string of database db.
func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *pgCluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// stop shuts the cluster down (fast, then immediate, then SIGKILL) and
// removes it.
func (c *pgCluster) stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil {
	steps:
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL} {
			_ = c.cmd.Process.Signal(sig)
			select {
			case <-c.done:
				break steps
			case <-time.After(10 * time.Second):
			}
		}
		select {
		case <-c.done:
		default:
			err = errors.New("postgres did not exit")
		}
	}
	return errors.Join(err, os.RemoveAll(c.root))
}

// pgSetup is the PostgreSQL the scenarios share: one cluster with a seeded
// million database and an initialised pgbench database.
type pgSetup struct {
	cluster    *pgCluster
	millionURL string
	pgbench    string // the pgbench binary
	scale      int
}

// postgres starts and fills the cluster the first time a scenario needs it.
func (r *runner) postgres(ctx context.Context) (*pgSetup, error) {
	if r.pg != nil {
		return r.pg, nil
	}
	c, err := startPostgres(ctx, r.cfg.Pins, r.logf)
	if err != nil {
		return nil, err
	}
	pg := &pgSetup{cluster: c, millionURL: c.url("million"), scale: r.cfg.PgbenchClients}
	r.pg = pg
	if pg.pgbench, err = exec.LookPath(filepath.Join(c.bin, "pgbench")); err != nil {
		if pg.pgbench, err = exec.LookPath("pgbench"); err != nil {
			return nil, errors.New("pgbench is not installed (Debian: apt-get install postgresql-contrib or postgresql)")
		}
	}
	for _, db := range []string{"million", "pgbench"} {
		if err := c.exec(ctx, "CREATE DATABASE "+db); err != nil {
			return nil, fmt.Errorf("create database %s: %w", db, err)
		}
	}
	start := time.Now()
	r.logf("seeding %s users and %s products into PostgreSQL", thousands(int64(r.cfg.Users)), thousands(int64(r.cfg.Products)))
	if err := r.millionCmd(ctx, "seed-postgres", "seed", "--database", pg.millionURL,
		"--users", strconv.Itoa(r.cfg.Users), "--products", strconv.Itoa(r.cfg.Products)); err != nil {
		return nil, err
	}
	r.logf("seeded in %s; initialising pgbench at scale %d", time.Since(start).Round(10*time.Millisecond), pg.scale)
	start = time.Now()
	init := r.cfg.Pins.command(r.cfg.Pins.GeneratorCPU, pg.pgbench, "-i", "-q", "-s", strconv.Itoa(pg.scale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "pgbench")
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w\n%s", err, tailLines(string(out), 20))
	}
	r.logf("pgbench initialised in %s", time.Since(start).Round(10*time.Millisecond))
	return pg, nil
}

// pgbenchSide is pgbench against the cluster, pinned to the generator CPU:
// the PostgreSQL baselines of the protocol.
type pgbenchSide struct {
	r      *runner
	pg     *pgSetup
	name   string
	script []string // "-S" for select-only; nothing for TPC-B
}

func (s *pgbenchSide) pause()  {}
func (s *pgbenchSide) resume() {}

// args is pgbench's command line for a run of d.
func (s *pgbenchSide) args(d time.Duration) []string {
	secs := max(1, int(math.Round(d.Seconds())))
	c := strconv.Itoa(s.r.cfg.PgbenchClients)
	return append(append([]string{}, s.script...), "-n", "-M", "prepared", "-c", c, "-j", "1", "-T", strconv.Itoa(secs),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.pg.cluster.port), "-U", "postgres", "pgbench")
}

// run runs pgbench for d and returns its output and the CPU time it used.
func (s *pgbenchSide) run(ctx context.Context, d time.Duration) (string, time.Duration, error) {
	cmd := s.r.cfg.Pins.command(s.r.cfg.Pins.GeneratorCPU, s.pg.pgbench, s.args(d)...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), 0, fmt.Errorf("%s: %w\n%s", s.name, err, tailLines(string(out), 20))
	}
	return string(out), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), ctx.Err()
}

func (s *pgbenchSide) warm(ctx context.Context, d time.Duration) error {
	_, _, err := s.run(ctx, d)
	return err
}

var (
	tpsRE    = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	txRE     = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)
)

// parsePgbench reads the throughput, transactions and failures from
// pgbench's summary.
func parsePgbench(out string) (tps float64, ok, failed int64, err error) {
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("no tps in pgbench's output:\n%s", tailLines(out, 20))
	}
	tps, _ = strconv.ParseFloat(m[1], 64)
	if m := txRE.FindStringSubmatch(out); m != nil {
		ok, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := failedRE.FindStringSubmatch(out); m != nil {
		failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return tps, ok, failed, nil
}

func (s *pgbenchSide) measure(ctx context.Context, d time.Duration) (*Side, error) {
	m := &Side{Name: s.name, Command: "taskset -c " + strconv.Itoa(s.r.cfg.Pins.GeneratorCPU) + " pgbench " + strings.Join(s.args(d), " ")}
	if !s.r.cfg.Pins.Pinned {
		m.Command = "pgbench " + strings.Join(s.args(d), " ")
	}
	mt := newMeter(s.pg.cluster.pid())
	mt.start()
	start := time.Now()
	out, cpu, err := s.run(ctx, d)
	elapsed := time.Since(start)
	mt.stop()
	m.DurationS = elapsed.Seconds()
	if err != nil {
		return m, err
	}
	tps, ok, failed, err := parsePgbench(out)
	m.ThroughputRPS, m.OK, m.Errors = tps, ok, failed
	mt.report(s.r.cfg.Pins, m)
	// The generator here is pgbench, a child, not this process.
	share := cpu.Seconds() / elapsed.Seconds()
	m.GeneratorProcess = &share
	return m, err
}

func runPgProductGet(ctx context.Context, r *runner, res *ScenarioResult) error {
	pg, err := r.postgres(ctx)
	if err != nil {
		return err
	}
	r.describePg(res, pg)
	srv, err := r.startMillion(ctx, res.Name, "--database", pg.millionURL, noCache, noShed)
	if err != nil {
		return err
	}
	defer srv.stop()
	paths, err := productPaths(ctx, "http://"+srv.addr)
	if err != nil {
		return err
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%s distinct products, drawn uniformly at random", thousands(int64(len(paths)))))
	target := &httpSide{r: r, name: "million", srv: srv, roots: []int{srv.pid(), pg.cluster.pid()},
		t: newHTTPTarget(srv.addr, r.cfg.Connections), next: pick(paths), step: "product", profile: r.profileFile(res.Name)}
	defer target.t.close()
	baseline := &pgbenchSide{r: r, pg: pg, name: "pgbench -S -M prepared", script: []string{"-S"}}
	return r.compare(ctx, res, baseline, target)
}

// describePg fills in the PostgreSQL scenarios' data and load.
func (r *runner) describePg(res *ScenarioResult, pg *pgSetup) {
	res.Stage += "; " + pg.cluster.version
	res.Data = fmt.Sprintf("%s products, %s users; pgbench scale %d (%s accounts)",
		thousands(int64(r.cfg.Products)), thousands(int64(r.cfg.Users)), pg.scale, thousands(int64(pg.scale)*100_000))
	res.Load = r.httpLoad() + fmt.Sprintf("; pgbench: %d clients, 1 thread, %s", r.cfg.PgbenchClients, r.cfg.Duration)
}
