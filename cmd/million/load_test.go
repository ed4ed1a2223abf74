package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/millionshop/million/e2e"
	"github.com/millionshop/million/web"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/millionshop/million/loadgen"
)

// loadTarget is a real million started in-process with seeded users and
// products and its admin listener for metrics.
type loadTarget struct {
	URL, MetricsURL string
}

func startLoadTarget(t *testing.T, users, products int) loadTarget {
	t.Helper()
	s := e2e.StartSeeded(t, users, products)
	return loadTarget{URL: s.BaseURL, MetricsURL: s.MetricsURL()}
}

// parseCLI parses args as main does (the same variables and environment
// prefix), failing the test instead of exiting.
func parseCLI(t *testing.T, args ...string) (*CLI, *kong.Context) {
	t.Helper()
	cli := new(CLI)
	parser, err := kong.New(cli, kong.Name("million"), cliVars("test"), kong.DefaultEnvars("MILLION"),
		kong.Exit(func(code int) { t.Fatalf("kong exited with %d", code) }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return cli, kctx
}

// runLoad parses args as `million load ...` exactly as main does and runs
// the command, its summary going to out.
func runLoad(t *testing.T, out io.Writer, args ...string) error {
	t.Helper()
	cli, kctx := parseCLI(t, append([]string{"load"}, args...)...)
	cli.Load.out = out
	kctx.BindTo(t.Context(), (*context.Context)(nil))
	return kctx.Run()
}

// TestLoadCommand runs `million load` against a real million: the summary,
// the JSON report with the server's figures, and SLOs that pass. The mix
// is read-only: logged-in journeys are the business of package journey's
// tests, and seeded logins cost production-strength argon2id.
func TestLoadCommand(t *testing.T) {
	t.Parallel()
	srv := startLoadTarget(t, 20, 200)
	path := filepath.Join(t.TempDir(), "load.json")
	var out bytes.Buffer
	err := runLoad(t, &out, "--target", srv.URL, "--ramp", "100:500ms,200:1s", "--mix", "product=60,list=25,search=10,categories=5",
		"--users", "20", "--virtual-users", "20", "--metrics", srv.MetricsURL, "--slo", "p99<5s,errors<0.1%,rps>=50,product.max<5s",
		"--report", path)
	if err != nil {
		t.Fatalf("million load: %v\n%s", err, out.String())
	}
	for _, want := range []string{"20 categories and 200 products discovered", "mix product=60,list=25,search=10,categories=5",
		"250 due, 250 sent, 250 completed, 0 errors", "server: 250 requests", "slo p99<5s", "(ok)", "report: " + path} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadgen.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	if rep.Summary.OK != 250 || len(rep.Meta.Stages) != 2 || rep.Meta.Generator.GoVersion == "" || rep.Meta.Generator.Version != version ||
		rep.Server == nil || rep.Server.DBQueriesPerRequest <= 0 || len(rep.SLO) != 4 || len(rep.Series) < 2 {
		t.Fatalf("report lacks parts of the run:\n%s", b)
	}
	for _, r := range rep.SLO {
		if !r.Pass {
			t.Fatalf("SLO %s missed: %s", r.Expr, r.Message)
		}
	}
}

// TestLoadCommandSLOMissed runs the built binary, configured through
// MILLION_* variables, with an SLO no server meets: the exit status is not
// zero and standard error says which SLO was missed. Standard error is
// not a terminal here, so no progress line is drawn on it.
func TestLoadCommandSLOMissed(t *testing.T) {
	t.Parallel()
	srv := startLoadTarget(t, 5, 50)
	bin := buildBinary(t)
	cmd := exec.Command(bin, "load", "--duration", "500ms", "--slo", "p99<1us,errors<1%")
	cmd.Env = append(os.Environ(), "MILLION_TARGET="+srv.URL, "MILLION_RATE=40", "MILLION_MIX=product=1,categories=1",
		"MILLION_USERS=5")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit: %v; want a non-zero status\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "SLO missed: p99<1us: p99 is") || strings.Contains(stderr.String(), "errors<1%") {
		t.Fatalf("stderr does not name just the missed SLO:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "\r") {
		t.Fatalf("progress drawn on a stderr that is not a terminal:\n%q", stderr.String())
	}
	if !strings.Contains(stdout.String(), "20 due, 20 sent, 20 completed, 0 errors") || !strings.Contains(stdout.String(), "MISSED") {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
}

// TestGatewayBodyLimitIsServes: million gateway refuses bodies above the
// size million serve accepts, by default, rather than forwarding one that
// serve would refuse mid-upload (a reset the gateway would count against
// the backend).
func TestGatewayBodyLimitIsServes(t *testing.T) {
	t.Parallel()
	cli, _ := parseCLI(t, "gateway", "--backend", "http://127.0.0.1:1")
	if cli.Gateway.MaxRequestBody != web.MaxBodyBytes {
		t.Fatalf("--max-request-body defaults to %d, want serve's %d", cli.Gateway.MaxRequestBody, web.MaxBodyBytes)
	}
}
