// Command garbageguest shows why stoa-guard's request path makes no garbage
// and never calls runtime.GC (perf's TestCollectionPolicy). It is the floor
// module plus, on every request, the garbage of a typical Go filter: a
// 20-entry map of strings (~2 KB). Environment (vm_config):
//
//	GARBAGE_GC_EVERY=N   call runtime.GC() every N requests (0: never)
package main

import (
	"os"
	"runtime"
	"strconv"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
)

var (
	gcEvery  int
	requests int
	sink     map[string]string
)

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct{ types.DefaultPluginContext }

func (*plugin) NewHttpContext(uint32) types.HttpContext { return &stream{} }

type stream struct{ types.DefaultHttpContext }

func (*stream) OnHttpRequestHeaders(int, bool) types.Action {
	m := make(map[string]string, 20)
	for i := range 20 {
		m[strconv.Itoa(i)+"-header-name"] = strconv.Itoa(i) + "-some-header-value-of-a-request"
	}
	sink = m
	requests++
	if gcEvery > 0 && requests%gcEvery == 0 {
		runtime.GC()
	}
	return types.ActionContinue
}

func init() {
	gcEvery, _ = strconv.Atoi(os.Getenv("GARBAGE_GC_EVERY"))
	abi.SetVMContext(&vmContext{})
}

func main() {}
