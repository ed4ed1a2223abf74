package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// dirPrefix marks the temp dirs of our clusters, so a later start can
	// find and remove the ones a killed test binary left behind.
	dirPrefix = "million-pgtest-"
	// minVersion is the oldest server the project supports (issue 3).
	minVersion   = 15
	readyTimeout = 30 * time.Second
)

// EnvDir names the environment variable that chooses the directory the
// clusters are created in (each in its own subdirectory).
const EnvDir = "MILLION_TEST_POSTGRES_DIR"

// baseDirs lists where clusters may live, the one to use first. A tmpfs is
// preferred: creating a file costs ~0.3 ms on this project's VM disks and a
// database copy creates hundreds, so clones are 4-10x faster in /dev/shm
// (35 ms vs 150 ms measured), and start-up ~30 % faster.
func baseDirs() []string {
	var dirs []string
	if d := os.Getenv(EnvDir); d != "" {
		dirs = append(dirs, d)
	}
	if syscall.Access("/dev/shm", 2 /* W_OK */) == nil {
		dirs = append(dirs, "/dev/shm")
	}
	return append(dirs, os.TempDir())
}

func dataDir(root string) string   { return filepath.Join(root, "data") }
func socketDir(root string) string { return filepath.Join(root, "sock") }
func logPath(root string) string   { return filepath.Join(root, "postgres.log") }
func ownerPath(root string) string { return filepath.Join(root, "owner.pid") }

// findBinDir prefers Debian's versioned layout, where several majors can sit
// side by side and pg_config on PATH may belong to an older one.
func findBinDir() (dir string, version int, err error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	for _, m := range matches {
		bin := filepath.Dir(m)
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
		if err == nil && v >= minVersion && v > version {
			dir, version = bin, v
		}
	}
	if dir != "" {
		return dir, version, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		bin := strings.TrimSpace(string(out))
		if v, err := serverVersion(ctx, bin); err == nil && v >= minVersion {
			return bin, v, nil
		}
	}
	return "", 0, fmt.Errorf("no PostgreSQL %d+ server binaries in /usr/lib/postgresql/*/bin or pg_config --bindir: "+
		"install them (scripts/test does: apt-get install postgresql) or set %s", minVersion, EnvURL)
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func serverVersion(ctx context.Context, bin string) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return 0, err
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unrecognised postgres --version: %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// postgresUser returns the credential to run initdb and postgres with when
// we are root, since both refuse to run as root.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, so initdb must run as the postgres OS user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

var staleOnce sync.Once

// startCluster creates a cluster in a fresh temp dir and starts it.
func startCluster(shared bool, opts options) (*Server, error) {
	binDir, version, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresUser()
	if err != nil {
		return nil, err
	}
	staleOnce.Do(removeStale)

	root, err := os.MkdirTemp(baseDirs()[0], dirPrefix)
	if err != nil {
		return nil, err
	}
	s := &Server{shared: shared, binDir: binDir, version: version, root: root, cred: cred}
	ok := false
	defer func() {
		if !ok {
			_ = s.close()
		}
	}()
	if err := os.WriteFile(ownerPath(root), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := os.Mkdir(socketDir(root), 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, d := range []string{root, socketDir(root)} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	if err := s.initdb(); err != nil {
		return nil, err
	}
	if err := s.configure(opts); err != nil {
		return nil, err
	}
	// Another process can take the port between our probe and postgres'
	// bind; a fresh port usually fixes that.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		s.base = url.URL{Scheme: "postgres", User: url.User("postgres"),
			Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), RawQuery: "sslmode=disable"}
		// Administration goes through the Unix socket, which initdb's
		// "local all all trust" admits whatever TCP rules (hostssl only,
		// say) and TLS settings a test gives its cluster.
		s.adminURL = (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
			RawQuery: url.Values{"host": {socketDir(root)}, "port": {strconv.Itoa(s.port)}, "sslmode": {"disable"}}.Encode()}).String()
		err = s.start()
		if err == nil {
			ok = true
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) initdb() error {
	// An explicit locale makes sorting and lower() the same on every machine
	// whatever LANG says; C.UTF-8 keeps them Unicode-aware, plain C is the
	// fallback for systems that lack it.
	var out []byte
	var err error
	for _, locale := range []string{"--locale=C.UTF-8", "--no-locale"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"), "--no-sync", "-U", "postgres",
			"--auth=trust", "-E", "UTF8", locale, "-D", dataDir(s.root))
		cmd.Dir = s.root // the caller's cwd may be unreadable for the postgres user
		cmd.SysProcAttr = procAttr(s.cred)
		// Pins the thread the parent-death signal is tied to (see launch).
		runtime.LockOSThread()
		out, err = cmd.CombinedOutput()
		runtime.UnlockOSThread()
		cancel()
		if err == nil {
			return nil
		}
		if !bytes.Contains(out, []byte("locale")) {
			break
		}
		_ = os.RemoveAll(dataDir(s.root))
	}
	return fmt.Errorf("initdb: %w\n%s", err, tail(out, 20))
}

// process is one run of the postmaster.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the postmaster has exited
	err  error         // its exit status, readable after done
}

func (s *Server) launch() (*process, error) {
	logf, err := os.OpenFile(logPath(s.root), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"),
		"-D", dataDir(s.root), "-p", strconv.Itoa(s.port), "-k", socketDir(s.root),
		"-c", "listen_addresses=127.0.0.1",
		// Durability buys nothing for a cluster deleted after the tests.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// Parallel tests each hold a pool.
		"-c", "max_connections=200",
		// So tests can attach streaming replicas with pg_basebackup -R.
		"-c", "wal_level=replica", "-c", "max_wal_senders=10",
	)
	cmd.Dir = s.root
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr(s.cred)
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked exits,
		// not the process; Go may retire idle threads, so this goroutine
		// keeps its thread for as long as postgres runs.
		runtime.LockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	return p, nil
}

// start starts the postmaster unless it runs, and waits until it accepts
// connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return errors.New("the cluster was removed")
	}
	if s.proc != nil {
		return nil
	}
	// Only this run's log lines explain its failure (and decide the retry
	// on a taken port); earlier runs append to the same file.
	var logStart int64
	if fi, err := os.Stat(logPath(s.root)); err == nil {
		logStart = fi.Size()
	}
	p, err := s.launch()
	if err != nil {
		return err
	}
	if err := s.waitReady(p); err != nil {
		_ = p.stop()
		return fmt.Errorf("%w\nlast lines of the postgres log:\n%s", err, s.logTail(logStart))
	}
	s.proc = p
	return nil
}

func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ping(ctx, s.adminURL)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d not accepting connections after %s: %w", s.port, readyTimeout, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during start-up: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, connURL string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return conn.Ping(ctx)
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop()
	s.proc = nil
	return err
}

// stop escalates from fast shutdown (sessions terminated, clean checkpoint)
// to immediate shutdown to SIGKILL, so a wedged server cannot hang tests.
func (p *process) stop() error {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 10 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		_ = p.cmd.Process.Signal(step.sig)
		select {
		case <-p.done:
			return nil
		case <-time.After(step.wait):
		}
	}
	return fmt.Errorf("postgres (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
}

// close stops the server for good: removes an own cluster's directory, or
// drops the templates this process left on an external server.
func (s *Server) close() error {
	if s.external {
		return s.dropTemplates()
	}
	err := s.stop()
	s.mu.Lock()
	s.removed = true
	s.mu.Unlock()
	return errors.Join(err, os.RemoveAll(s.root))
}

func (s *Server) logTail(from int64) string {
	b, _ := os.ReadFile(logPath(s.root))
	if from > int64(len(b)) {
		from = 0
	}
	return string(tail(b[from:], 30))
}

func tail(b []byte, lines int) []byte {
	b = bytes.TrimRight(b, "\n")
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if lines--; lines == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// removeStale removes cluster dirs left by test binaries that died before
// their teardown, stopping a postmaster that outlived its owner.
func removeStale() {
	var dirs []string
	for _, base := range baseDirs() {
		found, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
		dirs = append(dirs, found...)
	}
	for _, root := range dirs {
		if !isStale(root) {
			continue
		}
		if pid, ok := readPid(filepath.Join(dataDir(root), "postmaster.pid")); ok && alive(pid) && isPostgres(pid) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			for i := 0; i < 50 && alive(pid); i++ {
				time.Sleep(100 * time.Millisecond)
			}
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(root)
	}
}

func isStale(root string) bool {
	if pid, ok := readPid(ownerPath(root)); ok {
		return !alive(pid)
	}
	// No owner yet may mean another process is creating it right now.
	fi, err := os.Stat(root)
	return err == nil && time.Since(fi.ModTime()) > time.Minute
}

// readPid reads the number on the first line of a pid file.
func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// isPostgres guards against signalling an unrelated process that reused a
// dead postmaster's pid. Without /proc it cannot tell, and assumes it is.
func isPostgres(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) || !procMounted()
	}
	return strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres")
}

func procMounted() bool {
	_, err := os.Stat("/proc/self")
	return err == nil
}
