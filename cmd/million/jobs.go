package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/events"
	"github.com/millionshop/million/obs"
)

// JobsCmd inspects the event backbone's jobs.
type JobsCmd struct {
	DLQ DLQCmd `cmd:"" name:"dlq" help:"Inspect and replay messages whose handler failed every attempt."`
}

// DLQCmd groups the dead-letter commands.
type DLQCmd struct {
	List  DLQListCmd  `cmd:"" help:"List dead letters, oldest first."`
	Retry DLQRetryCmd `cmd:"" help:"Replay dead letters to the consumer that failed them, and remove them from the dead-letter stream."`
}

// EventsFlags select the NATS server: the embedded store in the data
// directory (serve must be stopped, since it holds that store), or an
// external server.
type EventsFlags struct {
	DataDir string `default:"./data" help:"Data directory whose embedded NATS store to open (million serve must be stopped)."`
	NATSURL string `name:"nats-url" env:"MILLION_NATS_URL" placeholder:"URL" help:"External NATS server (nats://host:4222) instead of the embedded store."`
}

func (f EventsFlags) open(ctx context.Context) (*events.Broker, error) {
	opts := app.EventsOptions(app.Config{DataDir: f.DataDir, NATSURL: f.NATSURL})
	opts.Logger = obs.NewLogger(os.Stderr, "warn")
	if f.NATSURL == "" {
		if _, err := os.Stat(opts.StoreDir); err != nil {
			return nil, fmt.Errorf("no embedded NATS store in %s (has million serve run with this data directory?): %w", f.DataDir, err)
		}
	}
	b, err := events.Open(ctx, opts)
	if errors.Is(err, events.ErrStoreBusy) {
		return nil, fmt.Errorf("%w (data directory %s)", err, f.DataDir)
	}
	return b, err
}

// DLQListCmd lists dead letters.
type DLQListCmd struct {
	EventsFlags
	Limit int  `default:"100" help:"Show at most this many (0: all)."`
	JSON  bool `help:"Print one JSON object per line instead of a table."`
}

// Run implements jobs dlq list.
func (c *DLQListCmd) Run(ctx context.Context) error {
	b, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	list, err := b.DeadLetters(ctx, c.Limit)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		for _, d := range list {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCONSUMER\tTOPIC\tEVENT\tATTEMPTS\tDEAD-LETTERED\tERROR")
	for _, d := range list {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Consumer, d.Topic, d.EventID, d.Attempts,
			d.Time.Format("2006-01-02T15:04:05Z"), d.Error)
	}
	return w.Flush()
}

// DLQRetryCmd replays dead letters.
type DLQRetryCmd struct {
	EventsFlags
	ID  []uint64 `name:"id" help:"Dead letter to replay (its ID from list); repeat for several."`
	All bool     `help:"Replay every dead letter."`
}

// Run implements jobs dlq retry.
func (c *DLQRetryCmd) Run(ctx context.Context) error {
	if c.All == (len(c.ID) > 0) {
		return errors.New("give either --id (one or more) or --all")
	}
	b, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	var done []events.DeadLetter
	if c.All {
		done, err = b.RetryAll(ctx)
	} else {
		for _, id := range c.ID {
			var d events.DeadLetter
			if d, err = b.Retry(ctx, id); err != nil {
				break
			}
			done = append(done, d)
		}
	}
	for _, d := range done {
		fmt.Printf("replayed %d to %s (%s %s)\n", d.Seq, d.Consumer, d.Topic, d.EventID)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%d dead letters replayed\n", len(done))
	return nil
}
