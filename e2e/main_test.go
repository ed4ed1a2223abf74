package e2e

import (
	"testing"

	"github.com/millionshop/million/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster, if a test started one.
func TestMain(m *testing.M) { pgtest.Main(m) }
