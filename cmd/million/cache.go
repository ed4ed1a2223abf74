package main

import (
	"time"

	"github.com/millionshop/million/app"
)

// CacheFlags tune the read cache of serve.
type CacheFlags struct {
	Cache             bool          `default:"true" negatable:"" help:"Cache reads (in-process L1, plus Redis L2 with --redis); --no-cache serves every read from the database."`
	CacheLocal        bool          `help:"Cache in process on PostgreSQL without --redis. Only for a single instance: instances sharing the database without Redis cannot invalidate each other's copies, which is why the cache is off there by default."`
	CacheSize         int64         `default:"64" help:"Bound on the in-process cache, in MiB."`
	CacheAnswers      int64         `default:"128" help:"Bound on the encoded answers of product pages, lists and categories kept for reuse, in MiB (about 1 KiB per product); 0 encodes every answer."`
	CacheTTLProduct   time.Duration `default:"5m" help:"Lifetime of a cached product."`
	CacheTTLList      time.Duration `default:"5m" help:"Lifetime of a cached product list page."`
	CacheTTLCategory  time.Duration `default:"24h" help:"Lifetime of the cached categories."`
	CacheTTLSearch    time.Duration `default:"1m" help:"Lifetime of cached search results."`
	CacheTTLProfile   time.Duration `default:"1h" help:"Lifetime of a cached user profile."`
	CacheBound        time.Duration `default:"200ms" help:"Invalidation bound: how long a write waits for every instance to drop its copy; an instance that hears nothing for this long stops serving its in-process copies."`
	CacheRedisTimeout time.Duration `default:"100ms" help:"Bound on each Redis command of a cached read; slower means the read goes to the database."`
	CacheLockWait     time.Duration `default:"1s" help:"How long a miss waits for another instance loading the same key before loading itself."`
}

// cacheConfig returns the cache part of the app configuration.
func (f CacheFlags) cacheConfig() app.CacheConfig {
	answers := f.CacheAnswers << 20
	if answers == 0 {
		answers = -1 // 0 in the app's configuration means the default
	}
	return app.CacheConfig{
		Disabled: !f.Cache, Local: f.CacheLocal, MaxBytes: f.CacheSize << 20, AnswerBytes: answers,
		ProductTTL: f.CacheTTLProduct, ListTTL: f.CacheTTLList, CategoryTTL: f.CacheTTLCategory,
		SearchTTL: f.CacheTTLSearch, ProfileTTL: f.CacheTTLProfile, Bound: f.CacheBound,
		RedisTimeout: f.CacheRedisTimeout, LockWait: f.CacheLockWait,
	}
}
