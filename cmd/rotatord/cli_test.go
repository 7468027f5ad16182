package main

import (
	"context"

	"github.com/rotatord/rotatord/internal/cli"
)

// The commands live in internal/cli; the tests here run them in-process the way main does,
// and build the binary for the rest.

// Env is cli.Env.
type Env = cli.Env

// Main runs one command in-process, as main does.
func Main(ctx context.Context, args []string, env Env) int { return cli.Main(ctx, args, env) }

// defaultDemoListen is the demo's default metrics address.
const defaultDemoListen = cli.DefaultDemoListen
