package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The screenshot's size, as the window Chromium renders into.
const shotW, shotH = 1280, 2400

// plotFrame is the border colour of every plot (svg.plot in the page's
// CSS), used for nothing else: the test finds the plots in the screenshot
// by it.
var plotFrame = color.RGBA{0xc3, 0xcc, 0xd5, 0xff}

// TestLoadHTMLReport is acceptance 1 of issue 4: `million load` against a
// real million writes the JSON and the HTML report; the same page comes
// out of `million load --from` with the JSON; and headless Chromium renders
// it with every plot visible: five framed plots, each with data drawn
// across much of its width (the per-second points of a 3 s run sit at
// 0.5, 1.5 and 2.5 s, two thirds of the time axis).
func TestLoadHTMLReport(t *testing.T) {
	t.Parallel()
	srv := startLoadTarget(t, 20, 200)
	dir := t.ArtifactDir() // kept with go test -artifacts, to look at
	jsonPath, htmlPath := filepath.Join(dir, "load.json"), filepath.Join(dir, "load.html")
	var out bytes.Buffer
	err := runLoad(t, &out, "--target", srv.URL, "--ramp", "100:1s,200:2s", "--mix", "product=60,list=25,search=10,categories=5",
		"--users", "20", "--virtual-users", "20", "--metrics", srv.MetricsURL, "--slo", "p99<5s,errors<0.1%",
		"--report", jsonPath, "--html", htmlPath)
	if err != nil {
		t.Fatalf("million load: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "html report: "+htmlPath) {
		t.Fatalf("summary does not name the HTML report:\n%s", out.String())
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{srv.URL, "Latency over time", "Throughput and errors over time", "Latency distribution by step",
		"Server: requests and database queries", "Server: memory and CPU", "p99&lt;5s", "Queries per request"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}

	again := filepath.Join(dir, "again.html")
	out.Reset()
	if err := runLoad(t, &out, "--from", jsonPath, "--html", again); err != nil {
		t.Fatalf("million load --from: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "500 due, 500 sent, 500 completed, 0 errors") {
		t.Fatalf("--from summary:\n%s", out.String())
	}
	if b, err := os.ReadFile(again); err != nil || !bytes.Equal(b, page) {
		t.Fatalf("the page rendered --from the JSON differs from the one of the run (err %v)", err)
	}

	shot := screenshot(t, htmlPath, filepath.Join(dir, "load.png"))
	frames := plotFrames(shot)
	if len(frames) != 5 {
		t.Fatalf("%d plots visible in the screenshot, want 5: %v", len(frames), frames)
	}
	for _, f := range frames {
		cover := inkColumns(shot, f)
		t.Logf("plot at %v: data in %.0f%% of its columns", f, cover*100)
		if cover < 0.4 {
			t.Errorf("plot at %v: data drawn in %.0f%% of its columns, want at least 40%%", f, cover*100)
		}
	}
}

// screenshot renders the page in headless Chromium, as a reader would see
// it in a 1280-pixel-wide window, and decodes the PNG.
func screenshot(t *testing.T, page, shot string) image.Image {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatalf("no chromium: scripts/test installs it (apt-get install chromium)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--force-color-profile=srgb", "--user-data-dir="+t.TempDir(), "--screenshot="+shot,
		"--window-size=1280,2400", "file://"+page)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != shotW || b.Dy() != shotH {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), shotW, shotH)
	}
	return img
}

// plotFrames finds the plots: the bounding boxes of the connected runs of
// the frame colour that are large enough to be a plot.
func plotFrames(img image.Image) []image.Rectangle {
	b := img.Bounds()
	isFrame := func(x, y int) bool {
		r, g, bl, _ := img.At(x, y).RGBA()
		return uint8(r>>8) == plotFrame.R && uint8(g>>8) == plotFrame.G && uint8(bl>>8) == plotFrame.B
	}
	seen := make([]bool, b.Dx()*b.Dy())
	var frames []image.Rectangle
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			i := (y-b.Min.Y)*b.Dx() + (x - b.Min.X)
			if seen[i] || !isFrame(x, y) {
				continue
			}
			box := image.Rect(x, y, x+1, y+1)
			stack := []image.Point{{x, y}}
			seen[i] = true
			for len(stack) > 0 {
				p := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				box = box.Union(image.Rect(p.X, p.Y, p.X+1, p.Y+1))
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						q := image.Pt(p.X+dx, p.Y+dy)
						if !q.In(b) {
							continue
						}
						j := (q.Y-b.Min.Y)*b.Dx() + (q.X - b.Min.X)
						if !seen[j] && isFrame(q.X, q.Y) {
							seen[j] = true
							stack = append(stack, q)
						}
					}
				}
			}
			if box.Dx() >= 300 && box.Dy() >= 150 {
				frames = append(frames, box)
			}
		}
	}
	return frames
}

// inkColumns is the share of a plot's columns that hold data: pixels of a
// saturated colour, which only the plotted lines, dots and bars have (the
// axes, grid and labels are grey).
func inkColumns(img image.Image, f image.Rectangle) float64 {
	inner := f.Inset(2)
	cols := 0
	for x := inner.Min.X; x < inner.Max.X; x++ {
		for y := inner.Min.Y; y < inner.Max.Y; y++ {
			r, g, b, _ := img.At(x, y).RGBA()
			hi, lo := max(r, g, b)>>8, min(r, g, b)>>8
			if hi-lo >= 48 {
				cols++
				break
			}
		}
	}
	return float64(cols) / float64(inner.Dx())
}
