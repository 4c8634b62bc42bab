//go:build wasip1

// Command stoa-guard is the proxy-wasm module (filter.wasm). It only wires:
// the filter, over the ABI layer's host, with the WASI clock and environment.
// A c-shared Go module runs init() from _initialize and never runs main, so
// registration happens in init(), where no host call is made.
package main

import (
	"os"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter"
)

var _ filter.Host = abi.Host{}

func init() {
	abi.SetVMContext(filter.NewVMContext(abi.Host{}, abi.Host{}.Now, os.LookupEnv))
}

func main() {}
