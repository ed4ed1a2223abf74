package main

import "context"

// SeedCmd fills the database with synthetic data.
type SeedCmd struct {
	StorageFlags
	Users    int `default:"1000" help:"How many users to create."`
	Products int `default:"1000" help:"How many products to create."`
}

// Run implements the seed command.
func (c *SeedCmd) Run(ctx context.Context) error {
	return nil
}
