package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestRemoveStaleTakesOnlyTheDirectoriesOfDeadBenches cannot run in
// parallel: it points TMPDIR at a directory of its own.
func TestRemoveStaleTakesOnlyTheDirectoriesOfDeadBenches(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead, alive := done.Process.Pid, os.Getpid()
	cases := []struct {
		name              string
		owner, postmaster int
		survives          bool
	}{
		{tempPrefix + "work-1", dead, 0, false},
		{tempPrefix + "pg-2", dead, dead, false},
		{tempPrefix + "work-3", alive, 0, true},  // a bench still running
		{tempPrefix + "pg-4", dead, alive, true}, // its postmaster outlived it
		{tempPrefix + "work-5", 0, 0, true},      // nobody's we can tell
		{"other-6", dead, 0, true},               // not the bench's
	}
	for _, c := range cases {
		dir := filepath.Join(os.TempDir(), c.name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if c.owner > 0 {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(c.owner)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if c.postmaster > 0 {
			pm := strconv.Itoa(c.postmaster) + "\n/data\n"
			if err := os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(pm), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeStale(t.Logf)
	for _, c := range cases {
		_, err := os.Stat(filepath.Join(os.TempDir(), c.name))
		if c.survives != (err == nil) {
			t.Errorf("%s: exists = %v, want %v", c.name, err == nil, c.survives)
		}
	}
}
