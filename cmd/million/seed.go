package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/seed"
)

// SeedCmd fills the database, embedded or PostgreSQL, with synthetic data.
type SeedCmd struct {
	StorageFlags
	Users    int    `default:"1000" help:"Total seeded users wanted (emails user1@seed.million.test ...); existing ones are kept."`
	Products int    `default:"1000" help:"Total seeded products wanted (SKUs SEED-1 ...); existing ones are kept."`
	Currency string `default:"USD" help:"Store currency of the seeded prices."`
	Seed     int64  `default:"1" help:"Random seed; the same seed gives the same data."`
}

// Run implements the seed command.
func (c *SeedCmd) Run(ctx context.Context) error {
	a, err := app.Open(ctx, c.config(), obs.NewLogger(os.Stderr, "warn"))
	if err != nil {
		return err
	}
	defer a.Close()
	last := time.Now()
	st, err := seed.Run(ctx, a.DB, seed.Options{Users: c.Users, Products: c.Products, Currency: c.Currency,
		Password: seed.DefaultPassword, Seed: c.Seed}, func(stage string, done, total int) {
		if time.Since(last) > time.Second || done == total {
			fmt.Fprintf(os.Stderr, "\r%-10s %d/%d   ", stage, done, total)
			last = time.Now()
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d categories, %d products, %d users in %s (password of every seeded user: %q)\n",
		st.Categories, st.Products, st.Users, st.Elapsed.Round(time.Millisecond), seed.DefaultPassword)
	return nil
}
