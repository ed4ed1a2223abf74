package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real million binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "million")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBinaryLifecycle runs the operator's path with the built binary: create
// the first admin from standard input, serve, log in, and stop on SIGTERM
// with exit status 0 and the database closed cleanly.
func TestBinaryLifecycle(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()

	create := exec.Command(bin, "user", "create", "--admin", "--email", "Owner@Example.com", "--password-stdin", "--data-dir", data)
	create.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := create.CombinedOutput(); err != nil || !strings.Contains(string(out), "created admin owner@example.com") {
		t.Fatalf("user create: %v\n%s", err, out)
	}

	addr, adminAddr := freeAddr(t), freeAddr(t)
	var logs bytes.Buffer
	serve := exec.Command(bin, "serve")
	serve.Env = append(os.Environ(), "MILLION_ADDR="+addr, "MILLION_ADMIN_ADDR="+adminAddr, "MILLION_DATA_DIR="+data)
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	waitReady(t, "http://"+addr+"/readyz")

	resp, err := http.Post("http://"+addr+"/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"owner@example.com","password":"correct horse battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login as the created admin: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + adminAddr + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin metrics: %v %v", resp, err)
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20 s of SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(data, "million.db-wal")); err == nil {
		if fi, _ := os.Stat(filepath.Join(data, "million.db-wal")); fi.Size() != 0 {
			t.Errorf("WAL not checkpointed on shutdown: %d bytes", fi.Size())
		}
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 15 s", url)
}

// TestServeHelpDocumentsEveryOption keeps the command-line contract of
// api.md visible in --help, with the MILLION_* variable of each option.
func TestServeHelpDocumentsEveryOption(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	for _, want := range []string{"--addr", "$MILLION_ADDR", "--admin-addr", "--data-dir", "$MILLION_DATA_DIR",
		"--payment-webhook-secret", "$MILLION_PAYMENT_WEBHOOK_SECRET", "--shutdown-timeout", "--drain-delay"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serve --help does not mention %s", want)
		}
	}
}
