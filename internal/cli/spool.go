package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/spool"
)

// spoolCommand is `rotatord spool list`: the secrets waiting for the sink (destination, key
// id, age; never the secret) and the entries moved aside as unreadable. It changes nothing.
func spoolCommand(_ context.Context, args []string, env Env) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(env.Stdout, "Usage: rotatord spool list [--config PATH]\n\nShows the secrets waiting for the sink and the rotations whose outcome is not yet known; never a secret. It changes nothing.")
		return nil
	}
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: spool takes the subcommand list", errUsage)
	}
	flags := newFlagSet("spool list", env)
	path := flags.String("config", config.DefaultPath, "config file")
	if err := parseFlags(flags, args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "spool")); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.Stdout, "no spool under %s: nothing is pending\n", cfg.StateDir)
		return nil
	}
	sp, err := app.OpenSpool(cfg, spool.OpenReadOnly) // `spool list` changes nothing
	if err != nil {
		return err
	}
	entries, unreadable, err := sp.List(false)
	if err != nil {
		return err
	}
	corrupt, err := sp.CorruptFiles()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%d pending in %s (sealed: %v)\n", len(entries), filepath.Join(cfg.StateDir, "spool", "pending"), sp.Sealed())
	if len(entries) > 0 {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tKEY_ID\tAGE\tROTATED_AT\tPATH")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Destination, e.KeyID, time.Since(e.SpooledAt).Round(time.Second), e.RotatedAt.Format(time.RFC3339), e.Path)
		}
		_ = tw.Flush()
	}
	intents, err := sp.Intents()
	if err != nil {
		return err
	}
	if len(intents) > 0 {
		fmt.Fprintf(env.Stdout, "%s whose outcome is not yet known (the next rotation of each lists its keys first):\n", plural(len(intents), "rotation"))
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tDESTINATION_ID\tBASELINE_KEY_ID\tSTARTED_AT")
		for _, i := range intents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(i.Destination), i.DestinationID, orDash(i.BaselineKeyID), i.StartedAt.Format(time.RFC3339))
		}
		_ = tw.Flush()
	}
	for _, u := range unreadable {
		fmt.Fprintf(env.Stdout, "unreadable (moved aside at the next run): %s: %s\n", u.File, u.Reason)
	}
	for _, f := range corrupt {
		fmt.Fprintf(env.Stdout, "moved aside earlier: %s\n", f)
	}
	return nil
}
