package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/millionshop/million/bench"
	"github.com/millionshop/million/obs"
)

// BenchCmd runs the benchmark protocol (package bench): million and a
// baseline on one CPU, the generator on another, alternating rounds, ratios
// with their range.
type BenchCmd struct {
	Scenario       []string      `default:"product-get,product-list" placeholder:"NAME,..." help:"Scenarios to run, in order: product-get, product-get-uncached, product-list, pg-product-get, pg-checkout, cache-effect, cache-effect-reads, gateway (needs haproxy), peak, or all. The default ones need neither PostgreSQL nor a million seeded users."`
	Rounds         int           `default:"3" help:"Rounds; each measures the baseline, then million."`
	Duration       time.Duration `default:"10s" help:"Length of each measured run: the saturation probe, then the open-model run at half the rate it found."`
	Warmup         time.Duration `default:"3s" help:"Warm-up of each side before the first round."`
	Connections    int           `default:"64" help:"Keep-alive connections of the generator (the closed-loop probe's concurrency)."`
	PgbenchClients int           `default:"16" help:"pgbench clients (-c), also its scale factor (-s)."`
	Products       int           `default:"100000" help:"Seeded products."`
	Users          int           `default:"10000" help:"Seeded users."`
	CartUsers      int           `default:"1000" help:"pg-checkout: users logged in, each with a cart (a login costs an argon2id hash on the server core)."`
	PeakUsers      int           `default:"1000000" help:"peak: seeded users."`
	PeakRate       float64       `default:"10000" help:"peak: arrival rate (requests per second)."`
	CacheRate      float64       `default:"200" help:"cache-effect: arrival rate (requests per second), one that million with --no-cache sustains without errors (the report says when it did not)."`
	ServerCPU      int           `name:"server-cpu" default:"0" help:"CPU of the servers and PostgreSQL (taskset -c)."`
	GeneratorCPU   int           `name:"generator-cpu" default:"1" help:"CPU of the load generator and pgbench."`
	WorkDir        string        `placeholder:"DIR" help:"Keep the seeded databases here and reuse them next time (default: a temporary directory, removed)."`
	CPUProfiles    string        `placeholder:"DIR" help:"peak, pg-checkout, product-get, product-get-uncached, product-list, pg-product-get: write million's CPU profile over the first measured run (for those compared with bare net/http or pgbench, the capacity probe) to DIR/<scenario>.pprof (read it with go tool pprof)."`
	JSON           string        `name:"json" placeholder:"FILE" help:"Write every round of every side as JSON to FILE."`
	WriteDocs      bool          `help:"Put the rows of the scenarios run into the bench table of --docs, replacing their previous rows."`
	Docs           string        `default:"docs/benchmarks.md" placeholder:"FILE" help:"The benchmarks document --write-docs updates."`

	ServeBare string `hidden:"" placeholder:"FILE" help:"Serve the response captured in FILE to every request: the bare net/http baseline the bench starts."`
	BareAddr  string `hidden:"" default:"127.0.0.1:0" help:"Listen address of --serve-bare."`

	out io.Writer // the summary; os.Stdout when nil
}

// Run implements the bench command.
func (c *BenchCmd) Run(ctx context.Context) error {
	if c.ServeBare != "" {
		return bench.ServeBare(ctx, c.ServeBare, c.BareAddr, obs.NewLogger(os.Stderr, "info"))
	}
	if _, err := bench.Selected(c.Scenario); err != nil {
		return err
	}
	if c.Rounds < 1 || c.Duration <= 0 || c.Connections < 1 {
		return errors.New("--rounds, --duration and --connections must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the million binary to start the servers from: %w", err)
	}
	// Re-executes this process under taskset unless it cannot pin; then it
	// returns, and the bench runs unpinned.
	pins := bench.Pin(c.ServerCPU, c.GeneratorCPU, exe, os.Args)
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	fmt.Fprintf(os.Stderr, "million bench: %s\n", pins.Describe())

	res, err := bench.Run(ctx, bench.Config{
		Binary: exe, Scenarios: c.Scenario, Rounds: c.Rounds, Duration: c.Duration, Warmup: c.Warmup,
		Connections: c.Connections, PgbenchClients: c.PgbenchClients, Products: c.Products, Users: c.Users,
		CartUsers: c.CartUsers, PeakUsers: c.PeakUsers, PeakRate: c.PeakRate, CacheRate: c.CacheRate, WorkDir: c.WorkDir, CPUProfiles: c.CPUProfiles, Pins: pins,
		Command: commandLine(os.Args), Log: os.Stderr,
	})
	if res == nil {
		return err
	}
	fmt.Fprintln(out)
	if werr := res.WriteText(out); werr != nil {
		return werr
	}
	if c.JSON != "" {
		if werr := res.WriteJSON(c.JSON); werr != nil {
			return fmt.Errorf("write the JSON report: %w", werr)
		}
		fmt.Fprintf(out, "\nJSON: %s\n", c.JSON)
	}
	if err != nil {
		return err
	}
	if c.WriteDocs {
		rows := res.DocRows()
		if len(rows) == 0 {
			return errors.New("no scenario finished, so nothing was written to " + c.Docs)
		}
		doc, rerr := os.ReadFile(c.Docs)
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return rerr
		}
		if werr := os.WriteFile(c.Docs, bench.UpdateDocs(doc, rows), 0o644); werr != nil {
			return werr
		}
		fmt.Fprintf(out, "\n%d rows written to %s\n", len(rows), c.Docs)
	}
	var failed []string
	for _, s := range res.Scenarios {
		if s.Err != "" {
			failed = append(failed, s.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// commandLine is the command as a user would type it again: "million" and
// the arguments, quoted where the shell needs it.
func commandLine(args []string) string {
	parts := []string{"million"}
	for _, a := range args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\"'$`\\|&;<>()*?[]{}~#!") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
