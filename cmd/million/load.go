package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/millionshop/million/loadgen"
	"github.com/millionshop/million/loadgen/journey"
)

// LoadCmd is the load generator: open-model shop journeys against a
// running million, with a report and SLO checks.
type LoadCmd struct {
	Target        string        `placeholder:"URL" help:"Base URL of the shop under test, e.g. http://127.0.0.1:8080 (required unless --from)."`
	Rate          float64       `default:"100" help:"Arrivals (requests) per second, kept whatever the server does."`
	Duration      time.Duration `default:"30s" help:"How long to send at --rate."`
	Ramp          string        `placeholder:"RATE:DUR,..." help:"Steps of rate:duration instead of --rate and --duration, e.g. 100:10s,500:10s,1000:30s."`
	Warmup        time.Duration `default:"0s" help:"Send at the first rate for this long before measuring; none of it is in the report."`
	Mix           string        `placeholder:"STEP=WEIGHT,..." help:"Weights of the journey steps (product, list, search, categories, orders, cart_add, checkout, login); default product=45,list=25,search=15,categories=5,orders=5,cart_add=3,checkout=1.5,login=0.5 (95% reads)."`
	Users         int           `default:"1000" help:"Population: log in as seeded users 1..N (user<N>@seed.million.test, up to 1000000); at most what million seed created."`
	Password      string        `help:"Password of the seeded users (default: the one million seed sets)."`
	VirtualUsers  int           `default:"1000" help:"Visitors active at once, each with its own session, cart and browser cache (at most --users)."`
	ThinkTime     time.Duration `default:"0s" help:"Mean pause of a visitor between a response and its next request; the arrival rate does not change."`
	ProductSkew   float64       `default:"1" help:"Zipf exponent of product popularity; 0 views all products evenly."`
	DiscoverPages int           `default:"5" help:"Pages of 100 products per category discovered at start (what is viewed and bought)."`
	Concurrency   int           `default:"1000" help:"Most requests in flight; arrivals due while all are busy wait (counted late), and their wait counts as latency."`
	Backlog       int           `default:"100000" help:"Late arrivals that may wait; more are dropped and counted as errors."`
	Timeout       time.Duration `default:"10s" help:"Timeout of every request."`
	Metrics       string        `placeholder:"URL" help:"The server's admin metrics, e.g. http://127.0.0.1:9090/metrics, for its requests, database queries per request, CPU and memory over the run."`
	SLO           string        `name:"slo" placeholder:"EXPR,..." help:"Thresholds that make the exit status non-zero when missed, e.g. 'p99<25ms,errors<0.1%,rps>900'; p50, p90, p99, p99.9, max, errors, rps, optionally per step (checkout.p99<200ms)."`
	Report        string        `placeholder:"FILE" help:"Write the JSON report to this file."`
	HTML          string        `name:"html" placeholder:"FILE" help:"Write the HTML report to this file: one self-contained page (summary, latency and throughput over time, latency distribution per step, server metrics) that opens offline."`
	From          string        `placeholder:"FILE" help:"Run nothing: read a JSON report written by --report, print its summary, check --slo against it if given, and write it again with --html (and --report). E.g. million load --from run.json --html run.html."`

	out io.Writer // the summary; os.Stdout when nil
}

// Run implements the load command.
func (c *LoadCmd) Run(ctx context.Context) error {
	if c.From != "" {
		return c.render()
	}
	if c.Target == "" {
		return errors.New("--target is required (or --from, to render a report of an earlier run)")
	}
	stages := []loadgen.Stage{{Rate: c.Rate, Duration: c.Duration}}
	if c.Ramp != "" {
		var err error
		if stages, err = loadgen.ParseRamp(c.Ramp); err != nil {
			return err
		}
	} else if c.Rate <= 0 || c.Duration <= 0 {
		return errors.New("--rate and --duration must be positive")
	}
	slos, err := loadgen.ParseSLOs(c.SLO)
	if err != nil {
		return err
	}
	var mix journey.Mix
	if c.Mix != "" {
		if mix, err = journey.ParseMix(c.Mix); err != nil {
			return err
		}
	}
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	var progress io.Writer
	if isTerminal(os.Stderr) {
		progress = os.Stderr
	}

	client := loadgen.NewHTTPClient(c.Concurrency)
	// Close the spare connections when done: a server shutting down waits
	// for connections on which no request ever came.
	defer client.CloseIdleConnections()
	shop, err := journey.New(ctx, journey.Config{
		Target: c.Target, Client: client, Mix: mix, Users: c.Users, Password: c.Password,
		VirtualUsers: c.VirtualUsers, ThinkTime: c.ThinkTime, ProductSkew: c.ProductSkew, DiscoverPages: c.DiscoverPages,
	})
	if err != nil {
		return err
	}
	desc := shop.Describe()
	fmt.Fprintf(out, "million load: %d categories and %d products discovered; mix %s (%.1f%% reads); %d users, %d virtual users\n",
		desc.Categories, desc.Products, desc.Mix, desc.ReadShare*100, desc.Users, desc.VirtualUsers)

	plan := loadgen.Plan{
		Target: c.Target, Command: strings.Join(os.Args, " "), Version: version, Stages: stages, Warmup: c.Warmup,
		Concurrency: c.Concurrency, Backlog: c.Backlog, Timeout: c.Timeout, MetricsURL: c.Metrics, SLOs: slos,
		Steps: shop.Steps(), Workload: desc,
	}
	if progress != nil {
		plan.Progress = func(phase string, p loadgen.Progress) {
			// \r and clear-to-end-of-line: one line, rewritten in place.
			fmt.Fprintf(progress, "\r\033[K%s %s", phase, p)
		}
	}
	rep, err := loadgen.Execute(ctx, plan, shop)
	if progress != nil {
		fmt.Fprint(progress, "\r\033[K")
	}
	if rep == nil {
		return err
	}
	// The reports are written even when an SLO was missed: that is when
	// they are read most closely.
	if werr := c.write(out, rep); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if rep.Meta.Interrupted {
		return errors.New("interrupted: the report covers the part that ran")
	}
	return nil
}

// render is --from: an earlier run's report, shown and written again, its
// SLOs checked anew when --slo is given.
func (c *LoadCmd) render() error {
	rep, err := loadgen.ReadReport(c.From)
	if err != nil {
		return err
	}
	var sloErr error
	if c.SLO != "" {
		slos, err := loadgen.ParseSLOs(c.SLO)
		if err != nil {
			return err
		}
		sloErr = rep.CheckSLOs(slos)
	}
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	if err := c.write(out, rep); err != nil {
		return err
	}
	return sloErr
}

// write prints the summary and writes the JSON and HTML reports asked for.
func (c *LoadCmd) write(out io.Writer, rep *loadgen.Report) error {
	if err := rep.WriteText(out); err != nil {
		return err
	}
	if c.Report != "" {
		if err := rep.WriteJSON(c.Report); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
		fmt.Fprintf(out, "report: %s\n", c.Report)
	}
	if c.HTML != "" {
		if err := rep.WriteHTML(c.HTML); err != nil {
			return fmt.Errorf("write the HTML report: %w", err)
		}
		fmt.Fprintf(out, "html report: %s\n", c.HTML)
	}
	return nil
}

// isTerminal says whether f is a character device: a terminal, where a
// line rewritten in place reads as live progress (or /dev/null, where it
// is harmlessly lost), rather than a file or pipe it would clutter.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
