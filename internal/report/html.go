package report

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"time"
)

// The HTML report is one page with no network and no external assets: inline CSS and one
// inline SVG timeline per destination (each key a mark, intervals past max_age coloured,
// the period's bounds drawn). It prints on A4 landscape.

const timelineWidth, timelineLeft, timelineRight = 1000.0, 10.0, 990.0

type htmlMark struct {
	X            float64
	Class, Title string
	ID           string
	Origin       string
}

type htmlSpan struct {
	X, W  float64
	Title string
}

type htmlDest struct {
	Destination
	MaxAge, Longest string
	Marks           []htmlMark
	Overdue         []htmlSpan
	FromX, ToX      float64
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"ts": ts, "kv": kvColumn, "dash": orDash}).Parse(`{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>rotatord report {{ts .R.Period.From}} to {{ts .R.Period.To}}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:24px;color:#111}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 6px} h3{font-size:14px;margin:18px 0 4px}
table{border-collapse:collapse;margin:4px 0} td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eee} .pass{color:#1a7f37;font-weight:bold} .fail{color:#c00;font-weight:bold}
.error{background:#fde2e2} .warning{background:#fff3cd} .info{background:#e7f0fb}
.inputs td:first-child{color:#555} code{font-size:12px}
svg{display:block;border:1px solid #ddd;background:#fcfcfc}
.bound{stroke:#111;stroke-width:2} .axis{stroke:#888} .overdue{fill:#d62728;opacity:.75}
.key{stroke:#1f4e9c;stroke-width:3} .key.outside_rotatord{stroke:#ff7f0e} .key.rotatord_lost{stroke:#8b0000;stroke-dasharray:3 2}
.key.created_with_destination{stroke:#777} .key.unknown{stroke:#aaa}
.legend span{display:inline-block;margin-right:14px} .sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}
.dest{page-break-inside:avoid}
@media print{body{margin:10mm} @page{size:A4 landscape}}
</style></head><body>
<h1>rotatord report: {{ts .R.Period.From}} to {{ts .R.Period.To}}</h1>
<p>Half-open period, UTC. <span class="{{if eq .R.Summary.Errors 0}}pass{{else}}fail{{end}}" id="verdict">{{.Verdict}}</span></p>
<table class="inputs">
<tr><td>generated</td><td>{{ts .R.GeneratedAt}} by rotatord {{.R.Inputs.Version}} from <code>{{.R.Inputs.Config}}</code></td></tr>
<tr><td>webhook.co</td><td>organisation {{dash .R.Inputs.Organization}} at {{.R.Inputs.APIURL}}</td></tr>
<tr><td>sink</td><td>{{.R.Inputs.Sink}}{{if .R.Inputs.VaultAddress}} at {{.R.Inputs.VaultAddress}}, mount {{.R.Inputs.VaultMount}}{{end}}</td></tr>
<tr><td>webhook.co audit chain</td><td>{{.Audit}}</td></tr>
</table>
<h2>Summary</h2>
<table id="summary">
<tr><th>destinations in scope</th><td>{{.R.Summary.InScope}}</td></tr>
<tr><th>compliant</th><td>{{.R.Summary.Compliant}}</td></tr>
<tr><th>keys minted in the period</th><td>{{.R.Summary.Keys}}</td></tr>
<tr><th>errors / warnings</th><td>{{.R.Summary.Errors}} / {{.R.Summary.Warnings}}</td></tr>
{{range .Kinds}}<tr><th>{{.}}</th><td>{{index $.R.Summary.ByKind .}}</td></tr>
{{end}}</table>
<h2>Findings</h2>
{{if .R.Findings}}<table id="findings"><tr><th>severity</th><th>kind</th><th>destination</th><th>from</th><th>to</th><th>key</th><th>detail</th></tr>
{{range .R.Findings}}<tr class="finding {{.Severity}}"><td>{{.Severity}}</td><td>{{.Kind}}</td><td>{{dash .Destination}}</td><td>{{ts .From}}</td><td>{{ts .To}}</td><td><code>{{dash .KeyID}}</code></td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p id="findings">None.</p>{{end}}
<h2>Destinations</h2>
<p class="legend"><span><i class="sw" style="background:#1f4e9c"></i>key minted and stored by rotatord</span><span><i class="sw" style="background:#ff7f0e"></i>minted outside rotatord</span><span><i class="sw" style="background:#8b0000"></i>minted by rotatord, lost</span><span><i class="sw" style="background:#777"></i>created with the destination</span><span><i class="sw" style="background:#d62728"></i>past max_age</span><span><i class="sw" style="background:#111"></i>period bounds</span></p>
{{end}}{{define "dest"}}<div class="dest" data-destination="{{.Name}}">
<h3>{{.Name}} <small>{{.ID}}</small> {{if .Compliant}}<span class="pass">compliant</span>{{else}}<span class="fail">not compliant</span>{{end}}</h3>
<p>schedule <code>{{.Schedule}}</code>, max_age {{.MaxAge}}, stored in <code>{{.Location}}</code>; longest interval {{.Longest}}{{if not .DeletedAt.IsZero}}; deleted at webhook.co {{ts .DeletedAt}}{{end}}</p>
<svg class="timeline" viewBox="0 0 1000 44" width="1000" height="44" role="img" aria-label="keys of {{.Name}} in the period">
<line class="axis" x1="10" y1="22" x2="990" y2="22"/>
{{range .Overdue}}<rect class="overdue" x="{{.X}}" y="12" width="{{.W}}" height="20"><title>{{.Title}}</title></rect>
{{end}}<line class="bound" x1="{{.FromX}}" y1="2" x2="{{.FromX}}" y2="42"/><line class="bound" x1="{{.ToX}}" y1="2" x2="{{.ToX}}" y2="42"/>
{{range .Marks}}<line class="key {{.Origin}}" data-key="{{.ID}}" x1="{{.X}}" y1="8" x2="{{.X}}" y2="36"><title>{{.Title}}</title></line>
{{end}}</svg>
{{if .Keys}}<table class="keys"><tr><th>key</th><th>minted</th><th>origin</th><th>stored</th><th>KV version</th></tr>
{{range .Keys}}<tr><td><code>{{.ID}}</code></td><td>{{ts .CreatedAt}}</td><td>{{.Origin}}</td><td>{{ts .StoredAt}}</td><td>{{kv .}}</td></tr>
{{end}}</table>{{end}}
</div>
{{end}}{{define "foot"}}</body></html>
{{end}}`))

func renderHTML(w io.Writer, r Report) error {
	audit := "not checked (" + auditWhy(r.Inputs.AuditChain) + ")"
	if a := r.Inputs.AuditChain; a != nil && a.Checked {
		audit = fmt.Sprintf("intact, %d rows verified", a.RowsVerified)
		if !a.OK {
			audit = fmt.Sprintf("BROKEN after %d rows: %s", a.RowsVerified, a.Detail)
		}
	}
	data := struct {
		R       Report
		Verdict string
		Audit   string
		Kinds   []string
	}{R: r, Verdict: verdict(r), Audit: audit, Kinds: Kinds}
	bw := bufio.NewWriter(w)
	if err := page.ExecuteTemplate(bw, "head", data); err != nil {
		return err
	}
	overdue := map[string][]Finding{}
	for _, f := range r.Findings {
		if f.Kind == Overdue {
			overdue[f.Destination] = append(overdue[f.Destination], f)
		}
	}
	// One destination at a time: its keys are unpacked only while it is written.
	for _, d := range r.Destinations {
		if err := page.ExecuteTemplate(bw, "dest", timeline(r.Period, d.Expand(), overdue[d.Name])); err != nil {
			return err
		}
	}
	if err := page.ExecuteTemplate(bw, "foot", nil); err != nil {
		return err
	}
	return bw.Flush()
}

// timeline lays one destination out on the period: the axis runs from the last key before
// the period (or the period's start) to its end.
func timeline(p Period, d Destination, overdue []Finding) htmlDest {
	start := p.From
	if d.Before != nil && d.Before.CreatedAt.Before(start) {
		start = d.Before.CreatedAt
	}
	end := p.To
	span := end.Sub(start)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return timelineLeft
		}
		f := float64(t.Sub(start)) / float64(span)
		return timelineLeft + (timelineRight-timelineLeft)*min(max(f, 0), 1)
	}
	h := htmlDest{Destination: d, MaxAge: Days(time.Duration(d.MaxAgeSeconds) * time.Second), Longest: Days(time.Duration(d.LongestSeconds) * time.Second),
		FromX: x(p.From), ToX: x(p.To)}
	keys := d.Keys
	if d.Before != nil {
		keys = append([]Key{*d.Before}, keys...)
	}
	for _, k := range keys {
		h.Marks = append(h.Marks, htmlMark{X: x(k.CreatedAt), Origin: k.Origin, ID: k.ID, Title: fmt.Sprintf("%s minted %s (%s)", k.ID, ts(k.CreatedAt), k.Origin)})
	}
	for _, f := range overdue {
		{
			h.Overdue = append(h.Overdue, htmlSpan{X: x(f.From), W: max(x(f.To)-x(f.From), 2), Title: "past max_age from " + ts(f.From) + " to " + ts(f.To)})
		}
	}
	return h
}
