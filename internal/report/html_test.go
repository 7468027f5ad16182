package report_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/report"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// chromium returns Debian's headless browser, or fails saying how to get it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install Debian's chromium package (make test and .ci/run do)")
	return ""
}

// browse runs headless Chromium on file with args (--dump-dom, --screenshot=…) and
// returns its standard output.
func browse(t *testing.T, file string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--window-size=1100,1400"}
	cmd := exec.CommandContext(ctx, chromium(t), append(append(base, args...), "file://"+file)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// TestHTMLInABrowser: the HTML report rendered by headless Chromium shows the summary, the
// findings, and per destination a timeline with a mark per key, the overdue stretch
// coloured and the period's bounds drawn; it loads nothing from anywhere.
func TestHTMLInABrowser(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	gap := weekly(t, "gap", func(i int, at time.Time) (bool, time.Duration) {
		if at.Month() == time.August && at.Day() <= 7 {
			return false, 2 * 24 * time.Hour
		}
		return false, 0
	})
	outside := weekly(t, "outside", nil)
	outside.Keys = append(outside.Keys, webhookco.SigningKey{ID: "outside-manual", Status: webhookco.KeyRevoked, CreatedAt: time.Date(2026, 9, 10, 15, 0, 0, 0, time.UTC)})
	outside.Name = `<script>alert(1)</script>`
	lost := weekly(t, "lost", nil)
	lost.Stored.History = lost.Stored.History.With(sink.HistoryEntry{KeyID: "lost-key", At: time.Date(2026, 8, 20, 3, 0, 30, 0, time.UTC), Lost: true})
	lost.Keys = append(lost.Keys, webhookco.SigningKey{ID: "lost-key", Status: webhookco.KeyRevoked, CreatedAt: time.Date(2026, 8, 20, 3, 0, 0, 0, time.UTC)})
	r := report.Build(report.Period{From: q3From, To: q3To}, []report.Subject{gap, outside, lost}, nil, report.Inputs{Version: "test", APIURL: "https://api.webhook.co"}, now)
	var buf bytes.Buffer
	if _, err := report.Write(context.Background(), &buf, r, "html", nil); err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)\s(src|href)\s*=|@import|url\(`).Match(buf.Bytes()) {
		t.Error("the page refers to an external asset")
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dom := browse(t, file, "--dump-dom")
	for _, want := range []string{`id="verdict">FAIL: 2 finding(s) are errors`, "minted_outside_rotatord", "outside-manual", "lost-key", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, "<script>") {
		t.Error("a destination name became a script")
	}
	// Marks: the key before the period and Q3's keys, per destination.
	for _, d := range r.Destinations {
		d := d.Expand()
		want := len(d.Keys) + 1
		if got := strings.Count(dom, `data-destination="`+strings.ReplaceAll(strings.ReplaceAll(d.Name, "<", "&lt;"), ">", "&gt;")+`"`); got != 1 {
			t.Errorf("%s: %d sections", d.Name, got)
		}
		section := dom[strings.Index(dom, d.ID+"</small>"):]
		section = section[:strings.Index(section, "</svg>")]
		if got := strings.Count(section, `class="key `); got != want {
			t.Errorf("%s: %d key marks in its timeline, want %d", d.Name, got, want)
		}
		if got := strings.Count(section, `class="bound"`); got != 2 {
			t.Errorf("%s: %d period bounds, want 2", d.Name, got)
		}
	}
	if got := strings.Count(dom, `class="overdue"`); got != 1 {
		t.Errorf("%d overdue stretches drawn, want 1", got)
	}
	// What it shows: the screenshot has the overdue colour, the key colours and the bounds.
	shot := filepath.Join(t.TempDir(), "report.png")
	browse(t, file, "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	counts := colours(img, map[string][3]uint8{
		"overdue": {0xdf, 0x5c, 0x5d}, "rotatord key": {0x1f, 0x4e, 0x9c}, "outside key": {0xff, 0x7f, 0x0e}, "bound": {0x11, 0x11, 0x11},
	})
	for name, n := range counts {
		if n < 20 {
			t.Errorf("the screenshot shows %d pixels of the %s colour", n, name)
		}
	}
	if os.Getenv("ROTATORD_REPORT_SCREENSHOT") != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(os.Getenv("ROTATORD_REPORT_SCREENSHOT"), b, 0o644)
	}
}

// colours counts the pixels near each named colour.
func colours(img image.Image, want map[string][3]uint8) map[string]int {
	out := map[string]int{}
	for name := range want {
		out[name] = 0
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for name, c := range want {
				if near(r>>8, c[0]) && near(g>>8, c[1]) && near(bl>>8, c[2]) {
					out[name]++
				}
			}
		}
	}
	return out
}

func near(v uint32, c uint8) bool { d := int(v) - int(c); return d > -12 && d < 12 }
