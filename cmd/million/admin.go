package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/user"
)

// MigrateCmd applies or lists migrations.
type MigrateCmd struct {
	StorageFlags
	Action string `arg:"" enum:"up,status" help:"up: apply pending migrations; status: list them."`
}

// Run implements the migrate command.
func (c *MigrateCmd) Run(ctx context.Context) error {
	a, err := app.Open(ctx, c.config(), obs.NewLogger(os.Stderr, "warn"))
	if err != nil {
		return err
	}
	defer a.Close()
	if c.Action == "up" {
		fmt.Println("all migrations applied")
		return nil
	}
	st, err := a.DB.MigrationStatuses(ctx, app.Migrations())
	if err != nil {
		return err
	}
	for _, s := range st {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Printf("%-8s %5d  %-8s %s\n", s.Module, s.Version, state, s.Name)
	}
	return nil
}

// UserCmd manages users.
type UserCmd struct {
	Create UserCreateCmd `cmd:"" help:"Create a user; the password is read from standard input."`
}

// UserCreateCmd creates a user, typically the first admin.
type UserCreateCmd struct {
	StorageFlags
	Email         string `required:"" help:"Email address of the new user."`
	Name          string `help:"Display name (defaults to the part of the email before @)."`
	Admin         bool   `help:"Give the user the admin role."`
	PasswordStdin bool   `required:"" help:"Read the password from standard input (first line)."`
}

// Run implements the user create command.
func (c *UserCreateCmd) Run(ctx context.Context) error {
	password, err := readPassword(os.Stdin)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, c.config(), obs.NewLogger(os.Stderr, "warn"))
	if err != nil {
		return err
	}
	defer a.Close()
	name := c.Name
	if name == "" {
		name, _, _ = strings.Cut(c.Email, "@")
	}
	role := user.RoleCustomer
	if c.Admin {
		role = user.RoleAdmin
	}
	u, err := a.Users.Register(ctx, user.Registration{Email: c.Email, Password: password, Name: name, Role: role})
	if err != nil {
		return err
	}
	fmt.Printf("created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}
