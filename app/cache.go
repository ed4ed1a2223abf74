package app

import (
	"log/slog"
	"time"

	"github.com/redis/rueidis"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cart"
	cartstore "github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/search"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
)

// CacheConfig tunes the read cache (package cache). The zero value is the
// default: on with embedded SQLite (one process owns the data) and with
// Redis (Config.RedisURL: L2 and the invalidation channel); off on
// PostgreSQL without Redis, where instances sharing the database would not
// hear each other's writes and would serve old prices for a whole TTL.
type CacheConfig struct {
	Disabled bool // serve every read from the database
	// Local forces the in-process cache on PostgreSQL without Redis: only
	// correct when a single instance uses the database.
	Local    bool
	MaxBytes int64 // L1 bound; 0 means 64 MiB
	// AnswerBytes bounds the encoded answers of public catalog reads kept
	// for reuse (catalog/httpapi); 0 means 128 MiB, negative keeps none.
	AnswerBytes int64
	ProductTTL  time.Duration // product by ID; 0 means 5 min
	ListTTL     time.Duration // product list pages; 0 means 5 min
	CategoryTTL time.Duration // categories; 0 means 24 h
	SearchTTL   time.Duration // search results; 0 means 1 min
	ProfileTTL  time.Duration // user profiles; 0 means 1 h
	// Bound is how long a write waits for every instance to drop its L1
	// copy, and how stale the invalidation channel may get before an
	// instance stops serving L1; 0 means 200 ms.
	Bound time.Duration
	// RedisTimeout bounds each Redis command of a read; 0 means 100 ms.
	RedisTimeout time.Duration
	// LockWait bounds how long a miss waits for another instance's load of
	// the same key before loading itself; 0 means 1 s.
	LockWait time.Duration
}

// cachedStores are the stores the modules read through: the cache
// decorators, or the plain stores when the cache is off.
type cachedStores struct {
	cache   *cache.Cache // nil when off
	users   user.Store
	catalog catalog.Store
	search  search.Store
	carts   cart.Store
	orders  order.Store
}

func openStores(cfg Config, db *sqldb.DB, redis rueidis.Client, users user.Store, metrics *obs.Metrics, logger *slog.Logger) (cachedStores, error) {
	s := cachedStores{users: users, catalog: catalogstore.New(db), search: searchstore.New(db), carts: cartstore.New(db),
		orders: orderstore.New(db)}
	if cfg.Cache.Disabled {
		return s, nil
	}
	if redis == nil && db.Dialect == sqldb.Postgres {
		if !cfg.Cache.Local {
			logger.Info("read cache off: instances sharing a PostgreSQL database without Redis cannot invalidate each other's copies; --redis turns it on (or --cache-local for a single instance)")
			return s, nil
		}
		logger.Warn("read cache in process only (--cache-local): correct only while one instance uses this PostgreSQL database; another instance's writes would not reach this one's copies until they expire")
	}
	c, err := cache.New(cache.Options{
		Redis: redis, DB: db, MaxBytes: cfg.Cache.MaxBytes, Bound: cfg.Cache.Bound,
		L2Timeout: cfg.Cache.RedisTimeout, LockWait: cfg.Cache.LockWait,
		Registerer: metrics.Registry, Logger: logger,
	})
	if err != nil {
		return s, err
	}
	s.cache = c
	s.users = userstore.NewCached(s.users, c, cfg.Cache.ProfileTTL)
	if redis == nil && db.Dialect == sqldb.SQLite {
		// One process owns the embedded database, so a revocation drops
		// the only cached copy before it returns. With Redis the sessions
		// live there (RedisSessions) and are not copied into memory.
		s.users = userstore.NewCachedSessions(s.users, c, 0)
	}
	s.catalog = catalogstore.NewCached(s.catalog, c, catalogstore.CacheTTLs{
		Product: cfg.Cache.ProductTTL, List: cfg.Cache.ListTTL, Category: cfg.Cache.CategoryTTL,
	})
	s.search = searchstore.NewCached(s.search, c, cfg.Cache.SearchTTL)
	s.carts = cartstore.NewCached(s.carts, c, 0)
	s.orders = orderstore.NewCached(s.orders, c, 0)
	return s, nil
}
