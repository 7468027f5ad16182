package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats a report is written in.
var Formats = []string{"text", "json", "csv", "html"}

// render writes the body of r in format (the part the digest covers).
func render(w io.Writer, r Report, format string) error {
	switch format {
	case "text":
		return renderText(w, r)
	case "json":
		return renderJSON(w, r)
	case "csv":
		return renderCSV(w, r)
	case "html":
		return renderHTML(w, r)
	}
	return fmt.Errorf("report: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

const stamp = time.RFC3339

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(stamp)
}

// Days writes a duration as days, hours and minutes: "9d 0h 0m", "7h 12m".
func Days(d time.Duration) string {
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	if days > 0 {
		return fmt.Sprintf("%dd %dh %dm", days, rest/time.Hour, rest%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dh %dm", rest/time.Hour, rest%time.Hour/time.Minute)
}

func verdict(r Report) string {
	if r.Summary.Errors == 0 {
		return "PASS: no finding is an error"
	}
	return fmt.Sprintf("FAIL: %d finding(s) are errors", r.Summary.Errors)
}

func renderText(out io.Writer, r Report) error {
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "rotatord report %s to %s (half-open, UTC)\n", ts(r.Period.From), ts(r.Period.To))
	fmt.Fprintf(w, "%s\n\n", verdict(r))
	writeInputs(w, r)
	s := r.Summary
	fmt.Fprintf(w, "\nSUMMARY\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "destinations in scope\t%d\n", s.InScope)
	fmt.Fprintf(tw, "compliant\t%d\n", s.Compliant)
	fmt.Fprintf(tw, "keys minted in the period\t%d\n", s.Keys)
	fmt.Fprintf(tw, "findings\t%d errors, %d warnings\n", s.Errors, s.Warnings)
	for _, k := range Kinds {
		fmt.Fprintf(tw, "  %s\t%d\n", k, s.ByKind[k])
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nFINDINGS\n")
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "none")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tKIND\tDESTINATION\tFROM\tTO\tKEY\tDETAIL")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Kind, orDash(f.Destination), ts(f.From), ts(f.To), orDash(f.KeyID), f.Detail)
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\nDESTINATIONS\n")
	for _, d := range r.Destinations {
		d := d.Expand()
		state := "compliant"
		if !d.Compliant {
			state = "NOT compliant"
		}
		fmt.Fprintf(w, "\n%s (%s): %s\n", d.Name, d.ID, state)
		fmt.Fprintf(w, "  policy: schedule %s, max_age %s; stored in %s\n", d.Schedule, Days(time.Duration(d.MaxAgeSeconds)*time.Second), d.Location)
		fmt.Fprintf(w, "  longest interval: %s (%s to %s), evaluated until %s\n", Days(time.Duration(d.LongestSeconds)*time.Second), ts(d.LongestFrom), ts(d.LongestTo), ts(d.End))
		if d.Before != nil {
			fmt.Fprintf(w, "  key before the period: %s at %s (%s)\n", d.Before.ID, ts(d.Before.CreatedAt), d.Before.Origin)
		}
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY\tMINTED\tORIGIN\tSTORED\tKV VERSION")
		for _, k := range d.Keys {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", k.ID, ts(k.CreatedAt), k.Origin, ts(k.StoredAt), kvColumn(k))
		}
		_ = tw.Flush()
	}
	return w.Flush()
}

func kvColumn(k Key) string {
	switch {
	case k.Version == "":
		return "-"
	case k.KVState == "":
		return k.Version
	}
	return k.Version + " (" + k.KVState + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeInputs(w io.Writer, r Report) {
	in := r.Inputs
	fmt.Fprintf(w, "generated %s by rotatord %s from %s\n", ts(r.GeneratedAt), in.Version, in.Config)
	fmt.Fprintf(w, "webhook.co: organisation %s at %s\n", orDash(in.Organization), in.APIURL)
	if in.VaultAddress != "" {
		fmt.Fprintf(w, "sink: %s at %s, mount %s\n", in.Sink, in.VaultAddress, in.VaultMount)
	} else {
		fmt.Fprintf(w, "sink: %s\n", in.Sink)
	}
	if len(in.Names) > 0 {
		fmt.Fprintf(w, "destinations asked for: %s\n", strings.Join(in.Names, " "))
	}
	switch a := in.AuditChain; {
	case a == nil || !a.Checked:
		fmt.Fprintf(w, "webhook.co audit chain: not checked (%s)\n", auditWhy(a))
	case a.OK:
		fmt.Fprintf(w, "webhook.co audit chain: intact, %d rows verified\n", a.RowsVerified)
	default:
		fmt.Fprintf(w, "webhook.co audit chain: BROKEN after %d rows: %s\n", a.RowsVerified, a.Detail)
	}
}

func auditWhy(a *AuditChain) string {
	if a == nil || a.Detail == "" {
		return "the API key lacks audit:read"
	}
	return a.Detail
}

// renderJSON writes the report one destination per line, so a year of a large account is
// never one value in memory.
func renderJSON(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	head := struct {
		Schema      string    `json:"schema"`
		GeneratedAt time.Time `json:"generated_at"`
		Period      Period    `json:"period"`
		Inputs      Inputs    `json:"inputs"`
		Summary     Summary   `json:"summary"`
		Findings    []Finding `json:"findings"`
	}{r.Schema, r.GeneratedAt, r.Period, r.Inputs, r.Summary, r.Findings}
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	bw.Write(b[:len(b)-1])
	bw.WriteString(",\n\"destinations\":[")
	for i, d := range r.Destinations {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n")
		b, err := json.Marshal(d.Expand())
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	bw.WriteString("]}")
	return bw.Flush()
}

func renderCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	write := func(rec ...string) {
		for i, c := range rec {
			// A cell a spreadsheet would run as a formula (a label from the provider) is
			// written as text.
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) && i > 0 {
				rec[i] = "'" + c
			}
		}
		_ = cw.Write(rec)
	}
	write("# findings")
	write("severity", "kind", "destination", "from", "to", "key_id", "detail")
	for _, f := range r.Findings {
		write(f.Severity, f.Kind, f.Destination, csvTime(f.From), csvTime(f.To), f.KeyID, f.Detail)
	}
	write("# destinations")
	write("destination", "destination_id", "location", "schedule", "max_age_seconds", "compliant", "keys_in_period", "longest_interval_seconds", "evaluated_until")
	for _, d := range r.Destinations {
		write(d.Name, d.ID, d.Location, d.Schedule, strconv.FormatInt(d.MaxAgeSeconds, 10), strconv.FormatBool(d.Compliant),
			strconv.Itoa(d.KeyCount()), strconv.FormatInt(d.LongestSeconds, 10), csvTime(d.End))
	}
	write("# keys")
	write("destination", "destination_id", "key_id", "minted_at", "provider_status", "origin", "stored_at", "stored_in", "kv_version", "kv_state")
	for _, d := range r.Destinations {
		d := d.Expand()
		for _, k := range d.Keys {
			write(d.Name, d.ID, k.ID, csvTime(k.CreatedAt), k.Status, k.Origin, csvTime(k.StoredAt), k.Location, k.Version, k.KVState)
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
