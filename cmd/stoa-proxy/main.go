// Command stoa-proxy runs filter.wasm in front of an HTTP upstream with no
// Envoy: the project's proxy-wasm host (wasmhost) with N worker VMs behind an
// HTTP front that stands in for Envoy's connection manager and jwt_authn.
// `make run` starts it with the demo MCP server behind it. See package
// localproxy for what it does and `stoa-proxy -h` for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stoa-platform/stoa-guard/localproxy"
)

func main() {
	o, err := localproxy.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stoa-proxy:", err)
		os.Exit(2)
	}
	log, err := localproxy.NewLogger(os.Stderr, o.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stoa-proxy:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := localproxy.Run(ctx, o, log, nil); err != nil {
		log.Error("stoa-proxy: " + err.Error())
		stop()
		os.Exit(1)
	}
}
