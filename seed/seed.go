// Package seed fills a million database, embedded SQLite or PostgreSQL, with
// realistic fake categories, products and users. Load tests and demos need a
// shop of production size (a million users, a hundred thousand products)
// standing up in about a minute, which the per-row service paths cannot do:
// they hash a password and open a transaction per row. Seed writes the tables
// of the user and catalog modules directly, in large transactions (multi-row
// INSERTs on SQLite, COPY on PostgreSQL), and indexes the products through
// the search store's bulk path.
package seed

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

// DefaultPassword is every seeded user's password unless Options.Password
// says otherwise, so a load test can log in as any seeded user without being
// told anything but the user's number.
const DefaultPassword = "million-seed-password"

// EmailDomain is the domain of every seeded user's email. It is a reserved
// .test name, so no mail ever leaves for a real inbox, and it marks which
// accounts are fake.
const EmailDomain = "seed.million.test"

// SKUPrefix starts every seeded product's SKU, which marks seeded products
// and lets a re-run find where the previous run stopped.
const SKUPrefix = "SEED-"

const (
	// txRows rows go in one transaction: large enough that commits are a
	// small part of the cost, small enough that a cancelled run keeps most
	// of its work and the WAL stays a few tens of megabytes.
	txRows = 50_000
	// Rows per INSERT statement. SQLite binds at most 32766 parameters; a
	// few hundred rows per statement already make the per-statement cost of
	// database/sql negligible. txRows must be a multiple of both.
	userStmtRows    = 500
	productStmtRows = 250
	// seedCacheKiB is the page cache of the write connection while seeding,
	// big enough to hold the users' email index, whose inserts land all over
	// the tree.
	seedCacheKiB = 256 * 1024
)

// Options says what to seed. Users and Products are totals, not increments:
// seeding 1000 users twice leaves 1000 seeded users.
type Options struct {
	Users    int    // seeded users that should exist: user1@… to user<Users>@…
	Products int    // seeded products that should exist: SEED-1 to SEED-<Products>
	Currency string // the store currency every price is in; "" means USD
	Password string // every seeded user's password; "" means DefaultPassword
	Seed     int64  // the same seed gives the same names, prices and stock
}

// Stats reports what a run did, so a re-run can show that it added nothing.
type Stats struct {
	Categories, Products, Users int // rows this run inserted, not rows that exist
	Elapsed                     time.Duration
}

// Email is seeded user n's email address (n from 1), so a load test can pick
// any user to log in as.
func Email(n int) string { return "user" + strconv.Itoa(n) + "@" + EmailDomain }

// SKU is seeded product n's SKU (n from 1).
func SKU(n int) string { return SKUPrefix + strconv.Itoa(n) }

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Run seeds db with the loader of its engine, SQLite or Postgres, whose
// docs say what a run does and how a re-run behaves. For the same options
// both leave the same rows but for their ids, so a load test sees the same
// shop on either engine.
func Run(ctx context.Context, db *sqldb.DB, opts Options, progress func(stage string, done, total int)) (Stats, error) {
	if db.Dialect == sqldb.Postgres {
		return Postgres(ctx, db, opts, progress)
	}
	return SQLite(ctx, db, opts, progress)
}

// normalize checks opts and fills in the defaults.
func (o *Options) normalize() error {
	if o.Users < 0 || o.Products < 0 {
		return errors.New("seed: negative count of users or products")
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	if !currencyPattern.MatchString(o.Currency) {
		return fmt.Errorf("seed: currency %q is not a three-letter ISO 4217 code", o.Currency)
	}
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	return nil
}

// SQLite seeds db, an embedded database whose migrations must already be
// applied. It first creates the seed categories whose slugs are missing,
// then products SEED-1 to SEED-<Products>, each also indexed for search just
// as the search store indexes it, then users 1 to <Users>, all with one
// shared password hash.
//
// Re-running is safe, and cheap in the usual case. Every insert is INSERT OR
// IGNORE, so a seeded email or SKU that is already taken is skipped, never
// duplicated and never an error; only the rows actually inserted are indexed
// for search. When the seeded rows in a table are exactly 1 to some m, as a
// previous run leaves them, the stage starts at m+1 instead of generating
// and skipping m rows; when there is a gap or a stray (a deleted seeded row,
// an account registered by hand as user500@seed.million.test), it goes over
// all numbers from 1, so the totals in opts are still met.
//
// Rows are committed 50,000 at a time, so a cancelled or failed run keeps
// what it committed and the next run resumes from there. While it runs, SQLite
// holds the only write connection, with synchronous=OFF and a larger page
// cache; both are restored and the WAL checkpointed before it returns. An
// operating system crash in the middle can lose the seeded data, which a
// re-run recreates.
//
// progress, if not nil, is called after each committed transaction with the
// stage ("categories", "products" or "users") and how many of the stage's
// rows for this run are done out of how many.
func SQLite(ctx context.Context, db *sqldb.DB, opts Options, progress func(stage string, done, total int)) (st Stats, err error) {
	start := time.Now()
	if db.Dialect != sqldb.SQLite {
		return st, fmt.Errorf("seed: SQLite called on a %s database", db.Dialect)
	}
	if err := opts.normalize(); err != nil {
		return st, err
	}
	if progress == nil {
		progress = func(string, int, int) {}
	}

	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return st, fmt.Errorf("seed: take the write connection: %w", err)
	}
	defer conn.Close()
	restore, err := tune(ctx, conn)
	if err != nil {
		return st, err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()

	s := &seeder{conn: conn, opts: opts, now: time.Now().UnixMicro(), progress: progress}
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

// tune speeds up the bulk load on conn and returns what undoes it. Skipping
// fsync is what makes a million rows fit in a minute; the WAL mode stays, so
// readers are never blocked.
func tune(ctx context.Context, conn *sql.Conn) (restore func() error, err error) {
	var synchronous, cacheSize int
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&synchronous); err != nil {
		return nil, fmt.Errorf("seed: read synchronous: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cacheSize); err != nil {
		return nil, fmt.Errorf("seed: read cache_size: %w", err)
	}
	restore = func() error {
		ctx := context.WithoutCancel(ctx)
		// synchronous first, so the checkpoint syncs what was written unsynced.
		_, e1 := conn.ExecContext(ctx, "PRAGMA synchronous = "+strconv.Itoa(synchronous))
		_, e2 := conn.ExecContext(ctx, "PRAGMA cache_size = "+strconv.Itoa(cacheSize))
		_, e3 := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		if err := errors.Join(e1, e2, e3); err != nil {
			return fmt.Errorf("seed: restore connection settings: %w", err)
		}
		return nil
	}
	for _, p := range []string{"PRAGMA synchronous = OFF", "PRAGMA cache_size = -" + strconv.Itoa(seedCacheKiB)} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return nil, errors.Join(fmt.Errorf("seed: %s: %w", p, err), restore())
		}
	}
	return restore, nil
}

type seeder struct {
	conn     *sql.Conn
	opts     Options
	now      int64 // created_at and updated_at of every row, unix microseconds
	progress func(stage string, done, total int)
}

// categories inserts the missing seed categories and returns how many it
// inserted and the ids of all of them, in the order of the categories list.
func (s *seeder) categories(ctx context.Context) (inserted int, ids []string, err error) {
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("seed categories: %w", err)
	}
	defer tx.Rollback()
	for _, c := range categories {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO categories (id, slug, name) VALUES (?, ?, ?)`,
			uuid.Must(uuid.NewV7()).String(), c.slug, c.name)
		if err != nil {
			return 0, nil, fmt.Errorf("seed category %s: %w", c.slug, err)
		}
		n, _ := res.RowsAffected()
		inserted += int(n)
		var id string
		if err := tx.QueryRowContext(ctx, `SELECT id FROM categories WHERE slug = ?`, c.slug).Scan(&id); err != nil {
			return 0, nil, fmt.Errorf("seed category %s: %w", c.slug, err)
		}
		ids = append(ids, id)
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, fmt.Errorf("seed categories: %w", err)
	}
	return inserted, ids, nil
}

// seeded returns how many of the seeded numbers 1 to n are surely taken:
// query must return the count and the largest of the seeded numbers in use,
// by a range scan of a unique index, counting only values that are exactly
// a seeded one: a stray such as SEED-7x, counted as 7, could make up for a
// gap and hide it. When they are 1 to max without a gap, the run can start
// after max. Otherwise a row was deleted or made by hand, so the run goes
// over every number and INSERT OR IGNORE skips the taken ones.
func (s *seeder) seeded(ctx context.Context, query string) (int, error) {
	var count int
	var highest sql.NullInt64
	if err := s.conn.QueryRowContext(ctx, query).Scan(&count, &highest); err != nil {
		return 0, err
	}
	if int64(count) == highest.Int64 {
		return count, nil
	}
	return 0, nil
}

func (s *seeder) products(ctx context.Context, catIDs []string) (int, error) {
	// '.' follows '-', so the range is exactly the SKUs starting with SEED-.
	from, err := s.seeded(ctx, `SELECT count(*), max(CAST(substr(sku, 6) AS INTEGER)) FROM products
		WHERE sku >= 'SEED-' AND sku < 'SEED.' AND sku GLOB 'SEED-[1-9]*' AND substr(sku, 6) NOT GLOB '*[^0-9]*'`)
	if err != nil {
		return 0, fmt.Errorf("seed products: find previous run: %w", err)
	}
	l := loader{
		stage:    "products",
		stmtRows: productStmtRows,
		perRow:   len(productColumns),
		sql: func(rows int) string {
			return insertSQL(`INSERT OR IGNORE INTO products (id, sku, name, description, price_cents, currency,
				category_id, stock, image_url, created_at, updated_at) VALUES `, rows,
				"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		},
		fill: func(g *rowGen, n int, dst []any) {
			g.productRow(n, s.opts.Currency, catIDs, s.now, dst)
		},
		// The search index gets exactly the rows this transaction inserted:
		// new rows of a rowid table get rowids above every existing one.
		wrap: func(ctx context.Context, tx *sql.Tx, insert func() error) error {
			var mark int64
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM products`).Scan(&mark); err != nil {
				return err
			}
			if err := insert(); err != nil {
				return err
			}
			return searchstore.BulkIndex(ctx, tx,
				`SELECT id AS product_id, name, description FROM products WHERE rowid > ?`, mark)
		},
	}
	return s.load(ctx, l, from+1, s.opts.Products, saltProducts)
}

func (s *seeder) users(ctx context.Context) (int, error) {
	// 's' follows 'r', so the range is exactly the emails starting with user.
	from, err := s.seeded(ctx, `SELECT count(*), max(CAST(substr(email, 5) AS INTEGER)) FROM users
		WHERE email >= 'user' AND email < 'uses' AND email GLOB 'user[1-9]*@`+EmailDomain+`'
		AND substr(email, 5, length(email) - `+strconv.Itoa(4+1+len(EmailDomain))+`) NOT GLOB '*[^0-9]*'`)
	if err != nil {
		return 0, fmt.Errorf("seed users: find previous run: %w", err)
	}
	if from >= s.opts.Users {
		s.progress("users", 0, 0)
		return 0, nil
	}
	// One hash for all: argon2id costs tens of milliseconds by design, a day
	// of CPU for a million users. Sharing a salt only helps an attacker of
	// accounts that are fake anyway.
	hash, err := user.HashPassword(s.opts.Password, user.DefaultPasswordParams)
	if err != nil {
		return 0, fmt.Errorf("seed users: hash password: %w", err)
	}
	l := loader{
		stage:    "users",
		stmtRows: userStmtRows,
		perRow:   6,
		sql: func(rows int) string {
			return insertSQL(`INSERT OR IGNORE INTO users (id, email, name, role, password_hash, created_at, updated_at) VALUES `,
				rows, "(?, ?, ?, 'customer', ?, ?, ?)")
		},
		fill: func(g *rowGen, n int, dst []any) {
			dst[0] = g.id()
			dst[1] = Email(n)
			dst[2] = g.userName(n)
			dst[3] = hash
			dst[4] = s.now
			dst[5] = s.now
		},
	}
	return s.load(ctx, l, from+1, s.opts.Users, saltUsers)
}

// insertSQL builds a multi-row INSERT: prefix, then rows copies of row.
// Parameters are anonymous '?', even for values every row repeats: the
// driver looks up the name of each parameter it binds, which for numbered
// ones (?NNN) is a linear search, so a statement of a few thousand of them
// spent most of the seed's time naming parameters.
func insertSQL(prefix string, rows int, row string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// loader describes how one table is bulk loaded.
type loader struct {
	stage    string
	stmtRows int // rows per INSERT statement; divides txRows
	perRow   int // parameters per row
	sql      func(rows int) string
	fill     func(g *rowGen, n int, dst []any) // writes row n's perRow parameters
	// wrap, if set, runs inside each transaction around the inserts.
	wrap func(ctx context.Context, tx *sql.Tx, insert func() error) error
}

// batch is the parameters of up to a batch's worth of rows, perRow a row:
// one INSERT statement on SQLite, a run of COPY rows on PostgreSQL.
type batch struct {
	rows int
	args []any
}

// generator makes rows on a goroutine of its own, so Go and the database
// each keep a core busy.
type generator struct {
	batches <-chan batch // closed after the last row
	spare   chan []any   // parameter slices to reuse, sparing the GC
	stop    func()       // ends the goroutine and waits for it
}

// generate starts a generator of rows nums, batchRows to a batch: fill
// writes row n's perRow parameters.
func generate(ctx context.Context, g *rowGen, nums iter.Seq[int], batchRows, perRow int,
	fill func(g *rowGen, n int, dst []any)) generator {
	batches := make(chan batch, 4)
	spare := make(chan []any, 8)
	genCtx, cancel := context.WithCancel(ctx)
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		defer close(batches)
		var args []any
		rows := 0
		send := func() bool {
			select {
			case batches <- batch{rows: rows, args: args}:
				args, rows = nil, 0
				return true
			case <-genCtx.Done():
				return false
			}
		}
		for n := range nums {
			if args == nil {
				select {
				case args = <-spare:
				default:
					args = make([]any, batchRows*perRow)
				}
				args = args[:batchRows*perRow]
			}
			off := rows * perRow
			fill(g, n, args[off:off+perRow])
			if rows++; rows == batchRows && !send() {
				return
			}
		}
		if rows > 0 {
			args = args[:rows*perRow]
			send()
		}
	}()
	return generator{batches: batches, spare: spare, stop: func() {
		cancel()
		<-genDone
	}}
}

// numbers yields from to to, inclusive.
func numbers(from, to int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for n := from; n <= to; n++ {
			if !yield(n) {
				return
			}
		}
	}
}

// load inserts rows from to to (inclusive) and returns how many it inserted.
// One goroutine generates rows while this one inserts them, so Go and SQLite
// each keep a core busy.
func (s *seeder) load(ctx context.Context, l loader, from, to int, salt uint64) (inserted int, err error) {
	total := to - from + 1
	if total <= 0 {
		s.progress(l.stage, 0, 0)
		return 0, nil
	}
	gen := generate(ctx, newRowGen(s.opts.Seed, salt), numbers(from, to), l.stmtRows, l.perRow, l.fill)
	defer gen.stop()
	batches, spare := gen.batches, gen.spare

	done := 0
	for done < total {
		txTotal := min(txRows, total-done)
		n, err := s.loadTx(ctx, l, batches, spare, txTotal)
		if err != nil {
			return inserted, fmt.Errorf("seed %s: %w", l.stage, err)
		}
		inserted += n
		done += txTotal
		s.progress(l.stage, done, total)
	}
	return inserted, nil
}

// loadTx inserts the next want rows from batches in one transaction.
func (s *seeder) loadTx(ctx context.Context, l loader, batches <-chan batch, spare chan<- []any, want int) (inserted int, err error) {
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	full, err := tx.PrepareContext(ctx, l.sql(l.stmtRows))
	if err != nil {
		return 0, err
	}
	defer full.Close()
	insert := func() error {
		for got := 0; got < want; {
			var b batch
			select {
			case b = <-batches:
			case <-ctx.Done():
				return ctx.Err()
			}
			var res sql.Result
			var err error
			if b.rows == l.stmtRows {
				res, err = full.ExecContext(ctx, b.args...)
			} else {
				res, err = tx.ExecContext(ctx, l.sql(b.rows), b.args...)
			}
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			inserted += int(n)
			got += b.rows
			select {
			case spare <- b.args:
			default:
			}
		}
		return nil
	}
	if l.wrap != nil {
		err = l.wrap(ctx, tx, insert)
	} else {
		err = insert()
	}
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return inserted, nil
}

// Salts keep user n and product n from drawing the same random numbers.
const (
	saltProducts uint64 = 0x70726f6475637473
	saltUsers    uint64 = 0x7573657273000000
)

// rowGen generates rows. Row n's random numbers come from a generator seeded
// by (seed, n) alone, so a row's content does not depend on where a run
// started or on how rows were batched: a resumed run yields what an
// uninterrupted one would have.
type rowGen struct {
	seed uint64
	salt uint64
	pcg  *rand.PCG
	r    *rand.Rand
	ids  io.Reader // buffered crypto/rand: one system call per 4 KiB of ids
	b    strings.Builder
}

func newRowGen(seed int64, salt uint64) *rowGen {
	pcg := rand.NewPCG(0, 0)
	return &rowGen{seed: uint64(seed), salt: salt, pcg: pcg, r: rand.New(pcg),
		ids: bufio.NewReaderSize(crand.Reader, 4096)}
}

// at reseeds the generator for row n. splitmix64 spreads consecutive n over
// unrelated PCG streams.
func (g *rowGen) at(n int) *rand.Rand {
	z := uint64(n) ^ g.salt
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	g.pcg.Seed(g.seed, z)
	return g.r
}

// id is a fresh UUIDv7, like the ids the services make, so seeded rows sort
// by creation as theirs do. Ids are the one part of a row that is not
// deterministic.
func (g *rowGen) id() string {
	return uuid.Must(uuid.NewV7FromReader(g.ids)).String()
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

func (g *rowGen) userName(n int) string {
	r := g.at(n)
	return pick(r, firstNames) + " " + pick(r, lastNames)
}

// productColumns are the columns productRow fills, in its order.
var productColumns = []string{"id", "sku", "name", "description", "price_cents", "currency",
	"category_id", "stock", "image_url", "created_at", "updated_at"}

// productRow writes product n's row of productColumns to dst: catIDs are the
// ids of the categories in the order of the categories list, now its
// created_at and updated_at.
func (g *rowGen) productRow(n int, currency string, catIDs []string, now int64, dst []any) {
	p := g.product(n)
	dst[0] = g.id()
	dst[1] = SKU(n)
	dst[2] = p.name
	dst[3] = p.description
	dst[4] = p.priceCents
	dst[5] = currency
	dst[6] = catIDs[p.category]
	dst[7] = p.stock
	dst[8] = "https://img.million.test/p/" + strconv.Itoa(n) + ".jpg"
	dst[9] = now
	dst[10] = now
}

type product struct {
	name, description string
	priceCents, stock int64
	category          int // index into categories
}

func (g *rowGen) product(n int) product {
	r := g.at(n)
	var p product
	p.category = r.IntN(len(categories))
	c := &categories[p.category]
	noun := pick(r, c.nouns)
	p.name = pick(r, adjectives) + " " + pick(r, c.materials) + " " + noun

	b := &g.b
	b.Reset()
	b.WriteString("The ")
	b.WriteString(p.name)
	b.WriteString(" is made for ")
	b.WriteString(pick(r, c.uses))
	b.WriteString(".")
	if r.IntN(3) > 0 {
		f1 := r.IntN(len(features))
		f2 := (f1 + 1 + r.IntN(len(features)-1)) % len(features)
		b.WriteString(" Every ")
		b.WriteString(strings.ToLower(noun))
		b.WriteString(" features ")
		b.WriteString(features[f1])
		b.WriteString(" and ")
		b.WriteString(features[f2])
		b.WriteString(".")
	}
	if r.IntN(2) == 0 {
		switch r.IntN(4) {
		case 0:
			b.WriteString(" Customers love its ")
			b.WriteString(pick(r, qualities))
			b.WriteString(".")
		case 1:
			fmt.Fprintf(b, " Backed by a %d-year warranty.", 1+r.IntN(5))
		case 2:
			fmt.Fprintf(b, " Ships in %d business days.", 1+r.IntN(5))
		default:
			fmt.Fprintf(b, " Rated %.1f out of 5 by %d shoppers.", 3.5+float64(r.IntN(16))/10, 3+r.IntN(2000))
		}
	}
	p.description = b.String()

	// Log-uniform from $1.99 to $999.99, like a real catalog: many cheap
	// items, few expensive ones. Most prices end in .99, some in .49.
	lo, hi := math.Log(199), math.Log(99999)
	cents := int64(math.Exp(lo + r.Float64()*(hi-lo)))
	if r.IntN(5) == 0 {
		cents = cents/100*100 + 49
	} else {
		cents = cents/100*100 + 99
	}
	p.priceCents = min(max(cents, 199), 99999)

	// One product in twenty is sold out, so checkout meets empty shelves too.
	if r.IntN(20) > 0 {
		p.stock = 1 + r.Int64N(500)
	}
	return p
}
