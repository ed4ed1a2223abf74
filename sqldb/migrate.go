package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// Migrations are one module's versioned schema changes. Each module keeps its
// own version table, so a module can later move to its own database whole.
type Migrations struct {
	Module string // used in the version table name: goose_<module>
	FS     fs.FS  // *.sql files in goose format, at the root of FS
}

// MigrationStatus is the state of one migration of one module.
type MigrationStatus struct {
	Module  string
	Version int64
	Name    string
	Applied bool
}

func provider(db *sql.DB, m Migrations) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, m.FS,
		goose.WithTableName("goose_"+m.Module), goose.WithDisableGlobalRegistry(true))
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
		p, err := provider(db.Write, m)
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
		p, err := provider(db.Write, m)
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
