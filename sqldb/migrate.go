package sqldb

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations are one module's versioned schema changes, written once per
// engine. Each module keeps its own version table (goose_<module>), so a
// module can later move to its own database whole.
type Migrations struct {
	Module   string
	SQLite   fs.FS // *.sql files in goose format, at the root of the FS
	Postgres fs.FS
}

// MigrationStatus is the state of one migration of one module.
type MigrationStatus struct {
	Module  string
	Version int64
	Name    string
	Applied bool
}

func (db *DB) provider(m Migrations) (*goose.Provider, error) {
	opts := []goose.ProviderOption{goose.WithTableName("goose_" + m.Module), goose.WithDisableGlobalRegistry(true)}
	dialect, fsys := goose.DialectSQLite3, m.SQLite
	if db.Dialect == Postgres {
		dialect, fsys = goose.DialectPostgres, m.Postgres
		// A session advisory lock, so instances starting together apply
		// each migration exactly once.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	if fsys == nil {
		return nil, fmt.Errorf("module %s has no %s migrations", m.Module, db.Dialect)
	}
	p, err := goose.NewProvider(dialect, db.Write, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", m.Module, err)
	}
	return p, nil
}

// Migrate applies every pending migration of every module, in order.
// It returns how many migrations it applied.
func (db *DB) Migrate(ctx context.Context, sets []Migrations) (int, error) {
	applied := 0
	for _, m := range sets {
		p, err := db.provider(m)
		if err != nil {
			return applied, err
		}
		res, err := p.Up(ctx)
		applied += len(res)
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", m.Module, err)
		}
	}
	return applied, nil
}

// MigrationStatuses lists every migration of every module and whether it is applied.
func (db *DB) MigrationStatuses(ctx context.Context, sets []Migrations) ([]MigrationStatus, error) {
	var out []MigrationStatus
	for _, m := range sets {
		p, err := db.provider(m)
		if err != nil {
			return nil, err
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", m.Module, err)
		}
		for _, s := range st {
			out = append(out, MigrationStatus{Module: m.Module, Version: s.Source.Version,
				Name: s.Source.Path, Applied: s.State == goose.StateApplied})
		}
	}
	return out, nil
}
