package e2e

import (
	"testing"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/redistest"
)

// Fleet is several in-process instances of million serving one shop: one
// PostgreSQL database, one Redis and one JWT secret, each instance with its
// own data directory and listeners, as several processes behind a load
// balancer would be.
type Fleet struct {
	Servers     []*Server
	Redis       *redistest.Server
	DatabaseURL string
}

// StartFleet starts n instances on a fresh PostgreSQL database (whatever
// MILLION_TEST_BACKEND says: instances cannot share an embedded database)
// and a fresh redis-server, and stops them when the test ends. mutate
// applies to every instance's configuration.
func StartFleet(t testing.TB, n int, mutate ...func(*app.Config)) *Fleet {
	t.Helper()
	redis := redistest.Start(t)
	servers := startCluster(t, n, append([]func(*app.Config){func(c *app.Config) { c.RedisURL = redis.URL() }}, mutate...)...)
	return &Fleet{Servers: servers, Redis: redis, DatabaseURL: servers[0].Config.DatabaseURL}
}

// Target returns a target for instance i, without admin credentials.
func (f *Fleet) Target(i int) *Target {
	s := f.Servers[i]
	return &Target{BaseURL: s.BaseURL, WebhookSecret: []byte(WebhookSecret), Server: s}
}
