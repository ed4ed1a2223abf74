// Command million is the whole shop in one binary: the server, its
// operator commands (migrations, users, seed data) and, in later stages, the
// load generator, the benchmark harness and the gateway.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/millionshop/million/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// CLI is the command line. Every flag also reads a MILLION_* environment variable.
type CLI struct {
	Serve          ServeCmd          `cmd:"" help:"Run the shop API (embedded SQLite by default)."`
	Migrate        MigrateCmd        `cmd:"" help:"Apply or list database migrations."`
	User           UserCmd           `cmd:"" help:"Manage users."`
	Seed           SeedCmd           `cmd:"" help:"Fill the database with synthetic users and products for demos and load tests."`
	Load           LoadCmd           `cmd:"" help:"Generate open-model load (shop journeys at a fixed arrival rate) against a running million and report latency, errors and server metrics."`
	Bench          BenchCmd          `cmd:"" help:"Run the benchmark protocol: million and a baseline pinned to one CPU, the generator to another, alternating rounds, ratios with min-max."`
	Gateway        GatewayCmd        `cmd:"" help:"Run the reverse proxy in front of several million serve instances (balancing, health checks, safe retries)."`
	RollingRestart RollingRestartCmd `cmd:"" name:"rolling-restart" help:"Restart instances one at a time, each after the previous is ready again."`
	Jobs           JobsCmd           `cmd:"" help:"Inspect and replay background jobs (the event dead-letter stream)."`
	Version        kong.VersionFlag  `help:"Print the version and exit."`
}

func main() {
	var cli CLI
	kctx := kong.Parse(&cli,
		kong.Name("million"),
		kong.Description("An e-commerce backend that grows from one user to a million without a rewrite."),
		cliVars(version),
		kong.UsageOnError(),
		kong.DefaultEnvars("MILLION"),
	)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "million:", err)
		os.Exit(1)
	}
}

// cliVars are the values the flags' defaults and help refer to: the
// version, and limits that belong to other packages (a default written
// there as a literal would drift from them).
func cliVars(version string) kong.Vars {
	return kong.Vars{"version": version, "max_body": strconv.Itoa(web.MaxBodyBytes)}
}
