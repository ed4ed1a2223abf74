package seed

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

const (
	// pgBatchRows rows go from the generator to COPY at a time: enough to
	// keep the channel cheap, few enough to start the first COPY at once.
	pgBatchRows = 1000
	// Rows per transaction on PostgreSQL. COPY makes rows cheap and a
	// commit costs one WAL flush, so the size only sets how much a cancelled
	// run keeps and how often progress is reported. Products commit more
	// often because each of their rows is also indexed for search, which
	// costs several times a user row.
	pgUserTxRows    = 50_000
	pgProductTxRows = 10_000
	// pgLockKey is the advisory lock that lets one seed run at a time into
	// a database: "mllnseed" in ASCII, apart from goose's migration lock.
	pgLockKey int64 = 0x6d6c6c6e73656564
)

// Postgres seeds db, a PostgreSQL database whose migrations must already be
// applied. It creates what SQLite creates, with the same names, prices,
// stock and password hash scheme, so a load test sees the same shop on
// either engine: the missing seed categories by plain inserts, then the
// missing products SEED-1 to SEED-<Products>, each indexed for search, then
// the missing users 1 to <Users>, both by COPY.
//
// Re-running is safe. COPY cannot skip a row that conflicts, so a stage
// first reads which of its seeded numbers are taken (an exact match on the
// email or SKU, so a seeded account registered by hand counts as taken) and
// copies the others only: existing rows are kept, a deleted one is put back,
// and a re-run of a complete seed copies nothing. Runs on one database are
// serialized by an advisory lock, so two at once add each row once. A row
// that another writer creates under a seeded email or SKU while the seed
// runs fails that transaction with a unique violation; running again
// completes the seed.
//
// Rows are committed in transactions of 10,000 products or 50,000 users, so
// a cancelled or failed run keeps what it committed and the next run
// resumes from there. The database's durability settings are left as they
// are: unlike the embedded file, the server is shared with everything else
// the operator runs on it.
//
// progress, if not nil, is called as SQLite calls it: after each committed
// transaction, with the stage and how many of the stage's rows for this run
// are done out of how many.
func Postgres(ctx context.Context, db *sqldb.DB, opts Options, progress func(stage string, done, total int)) (st Stats, err error) {
	start := time.Now()
	pool := db.Pool()
	if db.Dialect != sqldb.Postgres || pool == nil {
		return st, fmt.Errorf("seed: Postgres called on a %s database", db.Dialect)
	}
	if err := opts.normalize(); err != nil {
		return st, err
	}
	if progress == nil {
		progress = func(string, int, int) {}
	}
	conn, err := lockSeed(ctx, pool)
	if err != nil {
		return st, err
	}
	defer conn.Release()

	s := &pgSeeder{conn: conn.pc.Conn(), opts: opts, now: time.Now().UnixMicro(), progress: progress}
	var catIDs []string
	if st.Categories, catIDs, err = s.categories(ctx); err != nil {
		return st, err
	}
	progress("categories", len(categories), len(categories))
	if st.Products, err = s.products(ctx, catIDs); err != nil {
		return st, err
	}
	if st.Users, err = s.users(ctx); err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// lockSeed takes a connection holding the seed's advisory lock, waiting for
// a run in progress to finish. The lock is a session lock, so it holds
// across the run's many transactions; releasing the connection to the pool
// would keep it, so a failure to unlock destroys the connection instead.
func lockSeed(ctx context.Context, pool *pgxpool.Pool) (*lockedConn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, pgLockKey); err != nil {
		conn.Release()
		return nil, fmt.Errorf("seed: wait for another seed run: %w", err)
	}
	return &lockedConn{pc: conn}, nil
}

// lockedConn is a pool connection that holds the seed lock.
type lockedConn struct{ pc *pgxpool.Conn }

// Release unlocks and returns the connection to its pool.
func (c *lockedConn) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.pc.Exec(ctx, `SELECT pg_advisory_unlock($1)`, pgLockKey); err != nil {
		_ = c.pc.Conn().Close(ctx)
	}
	c.pc.Release()
}

type pgSeeder struct {
	conn     *pgx.Conn
	opts     Options
	now      int64 // created_at and updated_at of every row, unix microseconds
	progress func(stage string, done, total int)
}

// categories inserts the missing seed categories and returns how many it
// inserted and the ids of all of them, in the order of the categories list.
func (s *pgSeeder) categories(ctx context.Context) (inserted int, ids []string, err error) {
	err = pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		slugs := make([]string, len(categories))
		for i, c := range categories {
			slugs[i] = c.slug
			tag, err := tx.Exec(ctx, `INSERT INTO categories (id, slug, name) VALUES ($1, $2, $3)
				ON CONFLICT (slug) DO NOTHING`, uuid.Must(uuid.NewV7()).String(), c.slug, c.name)
			if err != nil {
				return fmt.Errorf("seed category %s: %w", c.slug, err)
			}
			inserted += int(tag.RowsAffected())
		}
		rows, err := tx.Query(ctx, `SELECT slug, id FROM categories WHERE slug = ANY($1)`, slugs)
		if err != nil {
			return fmt.Errorf("seed categories: %w", err)
		}
		bySlug := map[string]string{}
		var slug, id string
		if _, err := pgx.ForEachRow(rows, []any{&slug, &id}, func() error {
			bySlug[slug] = id
			return nil
		}); err != nil {
			return fmt.Errorf("seed categories: %w", err)
		}
		for _, c := range categories {
			if bySlug[c.slug] == "" {
				return fmt.Errorf("seed category %s: not found after insert", c.slug)
			}
			ids = append(ids, bySlug[c.slug])
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return inserted, ids, nil
}

// missing returns the seeded numbers from 1 to n that are free in column
// of table, and how many there are. A seeded value is prefix, the number
// with no sign or leading zero, then suffix; prefix and suffix are ASCII
// without LIKE wildcards. The query is a sequential scan, which a million
// rows take in about half a second, because that keeps it exact whatever
// the database's collation: a range scan of the unique index could be cut
// short by a collation that sorts text starting with "user" elsewhere. The
// pattern is applied to the number alone, since a regular expression over
// each whole email cost PostgreSQL fifteen times as much.
func (s *pgSeeder) missing(ctx context.Context, table, column, prefix, suffix string, n int) (iter.Seq[int], int, error) {
	col := pgx.Identifier{column}.Sanitize()
	rows, err := s.conn.Query(ctx, `SELECT m::bigint FROM (
			SELECT substr(`+col+`, $2, length(`+col+`) - $3) AS m FROM `+pgx.Identifier{table}.Sanitize()+`
			WHERE `+col+` LIKE $4) t
		WHERE CASE WHEN m ~ '^[1-9][0-9]{0,9}$' THEN m::bigint <= $1 END`,
		n, len(prefix)+1, len(prefix)+len(suffix), prefix+"%"+suffix)
	if err != nil {
		return nil, 0, err
	}
	taken, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, 0, err
	}
	slices.Sort(taken)
	taken = slices.Compact(taken)
	seq := func(yield func(int) bool) {
		i := 0
		for k := 1; k <= n; k++ {
			if i < len(taken) && taken[i] == int64(k) {
				i++
				continue
			}
			if !yield(k) {
				return
			}
		}
	}
	return seq, n - len(taken), nil
}

func (s *pgSeeder) products(ctx context.Context, catIDs []string) (int, error) {
	nums, total, err := s.missing(ctx, "products", "sku", SKUPrefix, "", s.opts.Products)
	if err != nil {
		return 0, fmt.Errorf("seed products: find previous runs: %w", err)
	}
	return s.load(ctx, pgLoader{
		stage:   "products",
		table:   "products",
		columns: productColumns,
		txRows:  pgProductTxRows,
		fill: func(g *rowGen, n int, dst []any) {
			g.productRow(n, s.opts.Currency, catIDs, s.now, dst)
		},
		// The same transaction indexes exactly the rows it copied, from
		// the rows still in memory.
		after: func(ctx context.Context, tx pgx.Tx, copied []batch) error {
			perRow := len(productColumns)
			b, i := 0, 0
			_, err := searchstore.CopyPostgres(ctx, tx, pgx.CopyFromFunc(func() ([]any, error) {
				for b < len(copied) && i == copied[b].rows {
					b, i = b+1, 0
				}
				if b == len(copied) {
					return nil, nil
				}
				row := copied[b].args[i*perRow:]
				i++
				return []any{row[0], row[2], row[3]}, nil // id, name, description
			}))
			return err
		},
	}, nums, total, saltProducts)
}

func (s *pgSeeder) users(ctx context.Context) (int, error) {
	nums, total, err := s.missing(ctx, "users", "email", "user", "@"+EmailDomain, s.opts.Users)
	if err != nil {
		return 0, fmt.Errorf("seed users: find previous runs: %w", err)
	}
	if total == 0 {
		s.progress("users", 0, 0)
		return 0, nil
	}
	// One hash for all, as on SQLite.
	hash, err := user.HashPassword(s.opts.Password, user.DefaultPasswordParams)
	if err != nil {
		return 0, fmt.Errorf("seed users: hash password: %w", err)
	}
	return s.load(ctx, pgLoader{
		stage:   "users",
		table:   "users",
		columns: []string{"id", "email", "name", "role", "password_hash", "created_at", "updated_at"},
		txRows:  pgUserTxRows,
		fill: func(g *rowGen, n int, dst []any) {
			dst[0] = g.id()
			dst[1] = Email(n)
			dst[2] = g.userName(n)
			dst[3] = "customer"
			dst[4] = hash
			dst[5] = s.now
			dst[6] = s.now
		},
	}, nums, total, saltUsers)
}

// pgLoader describes how one table is copied.
type pgLoader struct {
	stage   string
	table   string
	columns []string
	txRows  int                               // rows per transaction
	fill    func(g *rowGen, n int, dst []any) // writes row n's values of columns
	// after, if set, runs in each transaction after the copy, with the
	// batches it copied.
	after func(ctx context.Context, tx pgx.Tx, copied []batch) error
}

// load copies rows nums, total of them, and returns how many it inserted.
func (s *pgSeeder) load(ctx context.Context, l pgLoader, nums iter.Seq[int], total int, salt uint64) (inserted int, err error) {
	if total <= 0 {
		s.progress(l.stage, 0, 0)
		return 0, nil
	}
	gen := generate(ctx, newRowGen(s.opts.Seed, salt), nums, pgBatchRows, len(l.columns), l.fill)
	defer gen.stop()
	for done := 0; done < total; {
		src := &copySource{ctx: ctx, batches: gen.batches, perRow: len(l.columns), limit: l.txRows}
		var copied int64
		err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) (err error) {
			if copied, err = tx.CopyFrom(ctx, pgx.Identifier{l.table}, l.columns, src); err != nil {
				return err
			}
			if l.after != nil {
				return l.after(ctx, tx, src.copied)
			}
			return nil
		})
		if err != nil {
			if sqldb.IsUniqueViolation(err) {
				err = fmt.Errorf("%w (a seeded row was created by another writer while seeding; run the seed again)", err)
			}
			return inserted, fmt.Errorf("seed %s: %w", l.stage, err)
		}
		inserted += int(copied)
		if src.taken == 0 {
			return inserted, fmt.Errorf("seed %s: rows ended after %d of %d", l.stage, done, total)
		}
		done += src.taken
		s.progress(l.stage, done, total)
		for _, b := range src.copied {
			select {
			case gen.spare <- b.args:
			default:
			}
		}
	}
	return inserted, nil
}

// copySource feeds COPY the generator's rows, whole batches of them until
// limit rows are taken or the generator is done.
type copySource struct {
	ctx     context.Context
	batches <-chan batch
	perRow  int
	limit   int
	taken   int     // rows taken from the generator
	copied  []batch // the batches taken, still valid until the transaction ends
	cur     batch
	next    int // the row of cur that Next moves to
	row     []any
	err     error
}

// Next implements pgx.CopyFromSource.
func (c *copySource) Next() bool {
	for c.next == c.cur.rows {
		if c.taken >= c.limit {
			return false
		}
		select {
		case b, ok := <-c.batches:
			if !ok {
				return false
			}
			c.cur, c.next = b, 0
			c.copied = append(c.copied, b)
			c.taken += b.rows
		case <-c.ctx.Done():
			c.err = c.ctx.Err()
			return false
		}
	}
	c.row = c.cur.args[c.next*c.perRow : (c.next+1)*c.perRow]
	c.next++
	return true
}

// Values implements pgx.CopyFromSource.
func (c *copySource) Values() ([]any, error) { return c.row, nil }

// Err implements pgx.CopyFromSource.
func (c *copySource) Err() error { return c.err }

var _ pgx.CopyFromSource = (*copySource)(nil)
