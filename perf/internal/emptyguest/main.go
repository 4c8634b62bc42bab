// Command emptyguest is the floor of the per-request benchmarks: a
// standard-Go proxy-wasm module over package abi whose every callback does
// nothing (Continue). Whatever the filter costs on top of it is the filter's.
package main

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
)

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct{ types.DefaultPluginContext }

var stream = &types.DefaultHttpContext{}

func (*plugin) NewHttpContext(uint32) types.HttpContext { return stream }

func init() { abi.SetVMContext(&vmContext{}) }

func main() {}
