package pgtest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestRemoveStaleKeepsLiveOwners(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mkdir := func(owner int) string {
		root, err := os.MkdirTemp("", dirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(root) })
		if err := os.WriteFile(ownerPath(root), []byte(strconv.Itoa(owner)), 0o644); err != nil {
			t.Fatal(err)
		}
		return root
	}
	stale, live := mkdir(dead.Process.Pid), mkdir(os.Getpid())

	removeStale()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("dir of a dead test binary still there (%v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("dir of a live test binary removed: %v", err)
	}
}
