//go:build overload

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestOverloadShedsAndRecovers is the stage 3 overload test. It measures
// capacity and so needs the machine to itself, and its goodput figure still
// varies from run to run on a shared VM (see docs/benchmarks.md): it is not
// part of the default suite. Run it alone with
// `go test -count=1 -tags overload -run Overload -v ./cmd/million`. It is: a real
// `million serve` process on one CPU (GOMAXPROCS=1, pinned when the machine
// has a second CPU for the generator) gets, in three alternating rounds, a
// closed-loop load that measures its capacity for searches, then an
// open-model load at twice that rate. Adaptive shedding must keep goodput
// (searches answered 200 within the client's 1 s timeout) near capacity,
// answer the refused ones with a fast 503 + Retry-After (within half the
// client's timeout), let no request time out or fail any other way, and
// serve everything again once the load drops.
func TestOverloadShedsAndRecovers(t *testing.T) {
	if runtime.NumCPU() >= 2 && os.Getenv(generatorPinned) == "" {
		if taskset, err := exec.LookPath("taskset"); err == nil {
			// The generator is this test process: left to the scheduler it
			// takes CPU 0 from the server it measures, and the capacity and
			// the goodput both vary with how much. The test runs again in a
			// process pinned to CPU 1.
			run := exec.Command(taskset, "-c", "1", os.Args[0], "-test.run=^TestOverloadShedsAndRecovers$", "-test.count=1", "-test.v")
			run.Env = append(os.Environ(), generatorPinned+"=1")
			run.Stdout, run.Stderr = os.Stdout, os.Stderr
			if err := run.Run(); err != nil {
				t.Fatalf("the run pinned to CPU 1 failed: %v", err)
			}
			return
		}
	}
	bin := buildBinary(t)
	data := t.TempDir()
	seed := exec.Command(bin, "seed", "--data-dir", data, "--users", "10", "--products", "20000")
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	adminAddr := freeAddr(t)
	args := []string{bin, "serve", "--data-dir", data, "--addr", addr, "--admin-addr", adminAddr, "--no-access-log", "--rate-limit-ip", "0",
		// Uncached searches: each costs the server about a millisecond of CPU,
		// so twice its capacity is a rate the generator can offer.
		"--no-cache"}
	// In the run pinned to CPU 1, runtime.NumCPU counts the CPUs this
	// process may use, one: the server must still go to CPU 0, or it
	// inherits CPU 1 and shares it with the generator, whose share grows
	// with the load it offers (the goodput then measured the generator).
	if runtime.NumCPU() >= 2 || os.Getenv(generatorPinned) != "" {
		if taskset, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{taskset, "-c", "0"}, args...)
		}
	}
	var logs bytes.Buffer
	serve := exec.Command(args[0], args[1:]...)
	serve.Env = append(os.Environ(), "GOMAXPROCS=1")
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	base := "http://" + addr
	waitReady(t, base+"/readyz")

	queries := searchTerms(t, base)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second}}
	var next atomic.Int64
	search := func() outcome {
		q := queries[int(next.Add(1))%len(queries)]
		start := time.Now()
		resp, err := client.Get(base + "/v1/search?q=" + url.QueryEscape(q))
		o := outcome{latency: time.Since(start)}
		if err != nil {
			o.err = err
			return o
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		o.status, o.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		return o
	}

	// Warm up. Then, as bench.md's protocol asks of every figure on a
	// shared machine, alternate the baseline and the target: each round
	// measures capacity with a closed loop of eight workers (with four, the
	// server still idled between answers and capacity read about a tenth
	// low), then offers twice that rate,
	// and the goodput is compared with the capacity of its own round. The
	// machine's speed drifts between rounds (capacity moved from 216 to 494
	// searches/s between runs), and a ratio of two figures taken seconds
	// apart is what stays comparable.
	closedLoop(search, 8, time.Second)
	const rounds = 3
	var ratios []float64
	var capacity float64
	for round := 1; round <= rounds; round++ {
		results := closedLoop(search, 8, 3*time.Second)
		capacity = float64(count(results, func(o outcome) bool { return o.status == 200 })) / 3
		if capacity < 50 {
			t.Fatalf("round %d: capacity %.0f searches/s: too low to test overload meaningfully", round, capacity)
		}
		ratio := overloadRound(t, round, search, capacity, adminAddr)
		ratios = append(ratios, ratio)
		// The shedder's cool-off, before the next capacity probe.
		time.Sleep(2 * time.Second)
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	t.Logf("goodput under 2x overload over capacity: median %.0f%% (%.0f–%.0f%%) over %d rounds", 100*median, 100*ratios[0], 100*ratios[len(ratios)-1], rounds)
	// The stage 3 target. Each round also asserts what sets a shedding
	// server apart from one that queues everything: no request times out
	// (without shedding, half of them do at this rate) and refusals are
	// fast.
	if median < 0.9 {
		t.Errorf("median steady goodput %.0f%% of capacity under 2x overload, below 90%%", 100*median)
	}

	// Recovery: at half the capacity, after the shedder's cool-off (the
	// rounds' last pause), every request is served.
	results := openLoop(search, capacity/2, 2*time.Second)
	if bad := count(results, func(o outcome) bool { return o.err != nil || o.status != 200 }); bad > 0 {
		var sample []string
		for _, o := range results {
			if o.err != nil || o.status != 200 {
				sample = append(sample, fmt.Sprintf("%d %v after %v", o.status, o.err, o.latency))
			}
			if len(sample) == 5 {
				break
			}
		}
		t.Errorf("%d of %d requests failed at half the capacity after the overload, e.g. %q", bad, len(results), sample)
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("server gone after the overload: %v\n%s", err, logs.String())
	}
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, logs.String())
	}
}

// overloadRound offers twice capacity for a few seconds in an open model,
// checks that every request was answered 200 or refused fast with 503 and
// Retry-After, and returns the steady goodput over capacity.
func overloadRound(t *testing.T, round int, search func() outcome, capacity float64, adminAddr string) float64 {
	t.Helper()
	const overloadFor = 4 * time.Second
	results := openLoop(search, 2*capacity, overloadFor)
	good := count(results, func(o outcome) bool { return o.status == 200 && o.err == nil })
	var shedLatency []time.Duration
	var other []string
	for _, o := range results {
		switch {
		case o.err != nil:
			other = append(other, o.err.Error())
		case o.status == 503:
			if o.retryAfter == "" {
				other = append(other, "503 without Retry-After")
			}
			shedLatency = append(shedLatency, o.latency)
		case o.status != 200:
			other = append(other, fmt.Sprintf("status %d", o.status))
		}
	}
	// Goodput in the steady state, over the requests sent after the first
	// second: the shedder reacts within a few of its 100 ms samples, and
	// the queue built before that takes a moment to clear.
	const rampUp = time.Second
	steady := results[int(2*capacity*rampUp.Seconds()):]
	goodput := float64(count(steady, func(o outcome) bool { return o.status == 200 && o.err == nil })) /
		(overloadFor - rampUp).Seconds()
	if resp, err := http.Get("http://" + adminAddr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "million_shed") || strings.HasPrefix(line, "million_http_in_flight") {
				t.Log(line)
			}
		}
	}
	p99 := percentile(shedLatency, 0.99)
	t.Logf("round %d: capacity %.0f searches/s; at %.0f/s offered: %d sent, goodput %.0f/s after the first second (%.0f%% of capacity; %.0f/s over the whole run), %d shed (p99 %v), %d other failures",
		round, capacity, 2*capacity, len(results), goodput, 100*goodput/capacity, float64(good)/overloadFor.Seconds(), len(shedLatency), p99, len(other))
	if len(other) > 0 {
		t.Errorf("round %d: %d requests failed other than by shedding, e.g. %q", round, len(other), other[:min(len(other), 5)])
	}
	if len(shedLatency) == 0 {
		t.Errorf("round %d: nothing was shed at twice the capacity", round)
	} else if p99 > 500*time.Millisecond {
		t.Errorf("round %d: shed requests took %v (p99): a refusal must be fast", round, p99)
	}
	return goodput / capacity
}

// generatorPinned is set in the environment of the test's run pinned to
// CPU 1.
const generatorPinned = "MILLION_OVERLOAD_GENERATOR_PINNED"

type outcome struct {
	status     int
	retryAfter string
	latency    time.Duration
	err        error
}

// closedLoop runs do from workers goroutines back to back for d.
func closedLoop(do func() outcome, workers int, d time.Duration) []outcome {
	var mu sync.Mutex
	var all []outcome
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				o := do()
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return all
}

// openLoop starts do at rate per second for d, each on its own goroutine,
// and waits for all of them.
func openLoop(do func() outcome, rate float64, d time.Duration) []outcome {
	n := int(rate * d.Seconds())
	out := make([]outcome, n)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() { out[i] = do() })
	}
	wg.Wait()
	return out
}

func count(all []outcome, pred func(outcome) bool) int {
	n := 0
	for _, o := range all {
		if pred(o) {
			n++
		}
	}
	return n
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// searchTerms returns words from the seeded product names.
func searchTerms(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/v1/products?limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Items) == 0 {
		t.Fatalf("product list: %v (%d items)", err, len(page.Items))
	}
	var terms []string
	for _, p := range page.Items {
		terms = append(terms, strings.Fields(p.Name)...)
	}
	return terms
}
