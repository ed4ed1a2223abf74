package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// counters is what the bench reads from million's admin /metrics around a
// run: the counters that say what a request cost beyond its CPU time.
type counters struct {
	requests float64            // million_http_requests_total
	queries  map[string]float64 // million_db_queries_total by statement
	l1Hits   float64            // million_cache_requests_total{level="l1",result="hit"}
	l1Misses float64            // the same, result="miss"
}

// scrapeCounters reads million's metrics at url (its admin listener's
// /metrics).
func scrapeCounters(ctx context.Context, url string) (*counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := setupClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return parseCounters(resp.Body)
}

// parseCounters reads a Prometheus text exposition.
func parseCounters(r io.Reader) (*counters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the metrics: %w", err)
	}
	c := &counters{queries: map[string]float64{}}
	each := func(name string, f func(m *dto.Metric, v float64)) {
		if mf := fams[name]; mf != nil {
			for _, m := range mf.GetMetric() {
				f(m, m.GetCounter().GetValue()+m.GetUntyped().GetValue())
			}
		}
	}
	each("million_http_requests_total", func(_ *dto.Metric, v float64) { c.requests += v })
	each("million_db_queries_total", func(m *dto.Metric, v float64) { c.queries[labelOf(m, "statement")] += v })
	each("million_cache_requests_total", func(m *dto.Metric, v float64) {
		if labelOf(m, "level") != "l1" {
			return
		}
		switch labelOf(m, "result") {
		case "hit":
			c.l1Hits += v
		case "miss":
			c.l1Misses += v
		}
	})
	return c, nil
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// since is what the counters rose by from before.
func (c *counters) since(before *counters) *counters {
	d := &counters{requests: c.requests - before.requests, queries: map[string]float64{},
		l1Hits: c.l1Hits - before.l1Hits, l1Misses: c.l1Misses - before.l1Misses}
	for st, v := range c.queries {
		if n := v - before.queries[st]; n > 0 {
			d.queries[st] = n
		}
	}
	return d
}

// hitRatio is the L1 hit ratio, or nil when there were no lookups.
func (c *counters) hitRatio() *float64 {
	if c.l1Hits+c.l1Misses <= 0 {
		return nil
	}
	x := c.l1Hits / (c.l1Hits + c.l1Misses)
	return &x
}

// perRequest lists the n statements run most per request over byStatement
// (summed over rounds) and requests: "select products 0.031, …".
func perRequest(byStatement map[string]float64, requests float64, n int) string {
	if requests <= 0 || len(byStatement) == 0 {
		return "none"
	}
	names := slices.Collect(maps.Keys(byStatement))
	slices.SortFunc(names, func(a, b string) int {
		if d := byStatement[b] - byStatement[a]; d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, st := range names {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.3f", st, byStatement[st]/requests))
	}
	return strings.Join(parts, ", ")
}
