package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// server is a process the bench started and measures: million serve or the
// bare baseline, each on the server CPU with GOMAXPROCS=1.
type server struct {
	name      string
	cmd       *exec.Cmd
	logPath   string
	done      chan struct{} // closed when the process has exited
	err       error         // its exit status, once done
	addr      string        // public listener, host:port
	adminAddr string        // million's admin listener, or ""
	paused    bool
}

// startTimeout bounds how long a server may take to listen.
const startTimeout = 60 * time.Second

// startServer runs cmd with its output in logPath and waits until it logs
// the address it serves on (million's JSON log line {"msg":"serving",
// "addr":…}, which the bare baseline writes too) and answers readyPath.
// Servers listen on port 0, so two benches never fight over a port.
func startServer(ctx context.Context, name string, cmd *exec.Cmd, logPath, readyPath string) (*server, error) {
	return startServerWith(ctx, name, cmd, logPath, "", readyPath)
}

// startServerWith is startServer, or startServerAt when addr is set.
func startServerWith(ctx context.Context, name string, cmd *exec.Cmd, logPath, addr, readyPath string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv()
	// A server outlives a bench that is killed unless the kernel kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &server{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), addr: addr}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, and Go retires idle threads: this goroutine keeps
		// its thread for as long as the child runs.
		runtime.LockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.done)
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if addr == "" {
		if err := s.waitListening(ctx); err != nil {
			_ = s.stop()
			return nil, err
		}
	}
	if err := s.waitReady(ctx, readyPath); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

// logLine is what the bench reads from a server's JSON log.
type logLine struct {
	Msg  string `json:"msg"`
	Addr string `json:"addr"`
}

func (s *server) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if f, err := os.Open(s.logPath); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l logLine
				if json.Unmarshal(sc.Bytes(), &l) != nil {
					continue
				}
				switch l.Msg {
				case "admin listener":
					s.adminAddr = l.Addr
				case "serving", "gateway serving":
					s.addr = l.Addr
				}
			}
			f.Close()
			if s.addr != "" {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited before serving (%v):\n%s", s.name, s.err, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log its address within %s:\n%s", s.name, startTimeout, s.logTail())
		}
	}
}

func (s *server) waitReady(ctx context.Context, path string) error {
	if path == "" {
		return nil
	}
	deadline := time.Now().Add(startTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !s.alive() {
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", s.name, s.err, s.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s within %s:\n%s", s.name, path, startTimeout, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid is the server's process id (taskset execs the server, so it is the
// server's own).
func (s *server) pid() int { return s.cmd.Process.Pid }

// pause stops the process (SIGSTOP) so that an idle server's background
// work (timers, the outbox relay's polling) takes no time from the other
// side's measurement on the shared CPU; resume continues it.
func (s *server) pause() {
	if s != nil && !s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
		s.paused = true
	}
}

func (s *server) resume() {
	if s != nil && s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
}

// stop ends the server: SIGTERM (a clean shutdown), SIGKILL if it has not
// exited within 20 s.
func (s *server) stop() error {
	if s == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	s.resume()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		var ee *exec.ExitError
		if s.err != nil && !errors.As(s.err, &ee) {
			return s.err
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 20 s of SIGTERM", s.name)
	}
}

// alive says whether the server is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// logTail is the end of the server's output, to explain a failure.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// profileFile is where the CPU profile of scenario goes, or "" when none
// is asked for.
func (r *runner) profileFile(scenario string) string {
	if r.cfg.CPUProfiles == "" {
		return ""
	}
	return filepath.Join(r.cfg.CPUProfiles, scenario+".pprof")
}

// startProfile starts srv's CPU profile over the next d into *file, unless
// *file is "" (none asked for, or already written), and clears *file so a
// run profiles once. The returned function waits for the profile and logs
// a failure.
func (r *runner) startProfile(ctx context.Context, srv *server, file *string, d time.Duration) (wait func()) {
	if *file == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func(file string) { done <- srv.cpuProfile(ctx, file, d) }(*file)
	*file = ""
	return func() {
		if err := <-done; err != nil {
			r.logf("    CPU profile not written: %v", err)
		}
	}
}

// cpuProfile writes million's CPU profile over the next d (from its admin
// listener's /debug/pprof/profile) to file.
func (s *server) cpuProfile(ctx context.Context, file string, d time.Duration) error {
	if s.adminAddr == "" {
		return errors.New("no admin listener")
	}
	seconds := max(1, int(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.adminAddr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: status %d", resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
