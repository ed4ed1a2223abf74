package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/millionshop/million/gateway"
)

// RollingRestartCmd restarts instances one at a time, each only after the
// previous one is back, so a gateway in front always has the others.
type RollingRestartCmd struct {
	Instance       []string      `required:"" placeholder:"URL" help:"Base URL of each instance, in restart order (repeat); also the URL the gateway knows it by."`
	Command        string        `required:"" help:"Shell command that restarts one instance: %i is its 1-based index, %u its URL, %h its host:port (e.g. 'systemctl restart million@%i')."`
	WaitDown       bool          `default:"true" negatable:"" help:"After the command, wait until the instance stops being ready (the command only signals it). Use --no-wait-down when the command returns only after the new process runs."`
	DownTimeout    time.Duration `default:"30s" help:"How long the instance may take to stop being ready."`
	ReadyTimeout   time.Duration `default:"60s" help:"How long the instance may take to be ready again."`
	ReadyPath      string        `default:"/readyz" help:"Readiness path of the instances."`
	Rise           int           `default:"2" help:"Ready answers in a row that count as ready."`
	GatewayAdmin   string        `placeholder:"URL" help:"Gateway admin URL (http://127.0.0.1:9091): also wait until the gateway sends the instance traffic again."`
	Settle         time.Duration `default:"1s" help:"Pause after an instance is back before restarting the next."`
	CommandTimeout time.Duration `default:"2m" help:"Timeout of one restart command."`
}

// Run implements the rolling-restart command.
func (c *RollingRestartCmd) Run(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for i, inst := range c.Instance {
		u, err := gateway.ParseBackendURL(inst)
		if err != nil {
			return err
		}
		base := u.String()
		if !c.ready(ctx, client, base) {
			return fmt.Errorf("instance %d (%s) is not ready before its restart; stopping here", i+1, base)
		}
		cmdline := strings.NewReplacer("%i", strconv.Itoa(i+1), "%u", base, "%h", u.Host).Replace(c.Command)
		fmt.Printf("restarting %d/%d %s: %s\n", i+1, len(c.Instance), base, cmdline)
		began := time.Now()
		cctx, cancel := context.WithTimeout(ctx, c.CommandTimeout)
		cmd := exec.CommandContext(cctx, "sh", "-c", cmdline)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err = cmd.Run()
		cancel()
		if err != nil {
			return fmt.Errorf("restart command for instance %d: %w", i+1, err)
		}
		if c.WaitDown {
			if err := c.until(ctx, c.DownTimeout, func() bool { return !c.ready(ctx, client, base) }); err != nil {
				return fmt.Errorf("instance %d (%s) still ready %s after its restart command: %w", i+1, base, c.DownTimeout, err)
			}
		}
		streak := 0
		if err := c.until(ctx, c.ReadyTimeout, func() bool {
			if c.ready(ctx, client, base) {
				streak++
			} else {
				streak = 0
			}
			return streak >= c.Rise
		}); err != nil {
			return fmt.Errorf("instance %d (%s) not ready within %s: %w", i+1, base, c.ReadyTimeout, err)
		}
		if c.GatewayAdmin != "" {
			if err := c.until(ctx, c.ReadyTimeout, func() bool { return c.gatewaySendsTo(ctx, client, base) }); err != nil {
				return fmt.Errorf("gateway %s did not take instance %d (%s) back within %s: %w", c.GatewayAdmin, i+1, base, c.ReadyTimeout, err)
			}
		}
		fmt.Printf("instance %d/%d %s back in %s\n", i+1, len(c.Instance), base, time.Since(began).Round(time.Millisecond))
		if i+1 < len(c.Instance) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(c.Settle):
			}
		}
	}
	fmt.Printf("rolling restart of %d instances done\n", len(c.Instance))
	return nil
}

// until polls cond every 100 ms until it holds or d passes.
func (c *RollingRestartCmd) until(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (c *RollingRestartCmd) ready(ctx context.Context, client *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+c.ReadyPath, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode == http.StatusOK
}

func (c *RollingRestartCmd) gatewaySendsTo(ctx context.Context, client *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.GatewayAdmin, "/")+"/backends", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Backends []gateway.BackendStatus `json:"backends"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body) != nil {
		return false
	}
	for _, b := range body.Backends {
		if b.URL == base {
			return b.Available
		}
	}
	return false
}
