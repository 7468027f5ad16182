package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// accountCoverage lists every replay destination of the key's organisation and decides what
// becomes of each: the config's destinations and the rules' selections.
func accountCoverage(ctx context.Context, cfg *config.Config, client *webhookco.Client, p *paced) (account.Result, error) {
	var listing webhookco.Listing
	err := p.do(ctx, "the listing of the account's replay destinations", func(ctx context.Context) (err error) {
		listing, err = client.ListDestinations(ctx)
		return err
	})
	if err != nil {
		return account.Result{}, fmt.Errorf("list the account's replay destinations at webhook.co: %w", err)
	}
	// What the daemon saw deleted at webhook.co (gone from the list) it recorded in state_dir.
	r, _ := account.WithDeleted(resolveListing(cfg, listing), nil, app.ReadDeleted(cfg.StateDir))
	return r, nil
}

// savedCoverage is accountCoverage from a listing saved to a file (the JSON body of
// GET /v1/replay-destinations), for `rotatord plan --listing FILE`.
func savedCoverage(cfg *config.Config, file string) (account.Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return account.Result{}, fmt.Errorf("--listing: %w", err)
	}
	defer f.Close()
	listing, err := webhookco.DecodeDestinations(io.LimitReader(f, webhookco.MaxListingBytes))
	if err != nil {
		return account.Result{}, fmt.Errorf("--listing %s: %w", file, err)
	}
	return resolveListing(cfg, listing), nil
}

// resolveListing decides the coverage of a listing; its skipped items are said as notes.
func resolveListing(cfg *config.Config, listing webhookco.Listing) account.Result {
	r := account.Resolve(cfg, listing.Destinations)
	r.Skipped = listing.Skipped
	return r
}

// writeCoverage prints how the account is covered, then every destination that rotatord
// does not rotate and nobody excluded: uncovered, revoked, missing at webhook.co.
func writeCoverage(w io.Writer, r account.Result) error {
	c := r.Count()
	fmt.Fprintf(w, "\nwebhook.co account: %d covered, %d excluded, %d uncovered, %d revoked, %d missing at webhook.co, %d disabled, %d disabled by webhook.co\n",
		c[account.Covered], c[account.Excluded], c[account.Uncovered], c[account.Revoked], c[account.MissingAtProvider], c[account.Disabled], c[account.DisabledAtProvider])
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "left out of the listing: %s\n", s)
	}
	var shown []account.Item
	for _, it := range r.Items {
		switch it.State {
		case account.Uncovered, account.Revoked, account.MissingAtProvider, account.DisabledAtProvider:
			shown = append(shown, it)
		}
	}
	if len(shown) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tID\tLABEL\tURL\tNAME\tWHY")
	for _, it := range shown {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.State, it.ID, orDash(it.Label), orDash(it.URL), orDash(it.Name), it.Reason)
	}
	return tw.Flush()
}
