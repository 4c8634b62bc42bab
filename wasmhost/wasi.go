package wasmhost

import (
	"context"
	"io"
	"strconv"
	"time"
)

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoInval   = 28
	errnoNoent   = 44
	errnoNosys   = 52
)

// processStart anchors WASIClockHost's monotonic clock.
var processStart = time.Now()

// wasiImpl implements the WASI functions as Envoy's host does (cpp-host
// src/exports.cc): stdout/stderr go to the log, there is no file system,
// environ is vm_config.environment_variables, no args. Any function of the
// profile missing here returns ENOSYS (52), as Envoy >= 1.39 does for the
// file-system calls it stubs.
var wasiImpl = map[string]hostFunc{
	"fd_write":          wFdWrite,
	"fd_fdstat_get":     wFdstatGet,
	"environ_sizes_get": wEnvironSizes,
	"environ_get":       wEnviron,
	"args_sizes_get":    wArgsSizes,
	"args_get":          func(vm *VM, st []uint64) { st[0] = errnoSuccess },
	"clock_time_get":    wClockTimeGet,
	"clock_res_get":     wClockResGet,
	"random_get":        wRandomGet,
	"sched_yield":       func(vm *VM, st []uint64) { st[0] = errnoSuccess },
	"poll_oneoff":       wPollOneoff,
	"proc_exit": func(vm *VM, st []uint64) {
		panic(&trap{"proc_exit(" + strconv.Itoa(int(int32(uint32(st[0])))) + ")"})
	},
	"path_open":           func(vm *VM, st []uint64) { st[0] = errnoNoent },
	"fd_prestat_get":      func(vm *VM, st []uint64) { st[0] = errnoBadf },
	"fd_prestat_dir_name": func(vm *VM, st []uint64) { st[0] = errnoBadf },
}

func (vm *VM) registerWASI(ctx context.Context, module string) error {
	return vm.register(ctx, module, wasiSig, wasiImpl, "", errnoNosys)
}

// wFdWrite: fd 1 → info log, fd 2 → error log (trailing newline dropped);
// other descriptors EBADF.
func wFdWrite(vm *VM, st []uint64) {
	fd, iovs, n, nwritten := uint32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3])
	if fd != 1 && fd != 2 {
		st[0] = errnoBadf
		return
	}
	var msg []byte
	for i := uint32(0); i < n; i++ {
		p, ok1 := vm.mem.ReadUint32Le(iovs + 8*i)
		l, ok2 := vm.mem.ReadUint32Le(iovs + 8*i + 4)
		if !ok1 || !ok2 {
			st[0] = errnoInval
			return
		}
		b, ok := vm.read(p, l)
		if !ok {
			st[0] = errnoInval
			return
		}
		msg = append(msg, b...)
	}
	if !vm.putU32(nwritten, uint32(len(msg))) {
		st[0] = errnoInval
		return
	}
	level := LogInfo
	if fd == 2 {
		level = LogError
	}
	if len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	vm.h.log(vm.id, vm.effective, level, string(msg))
	st[0] = errnoSuccess
}

// wFdstatGet describes stdout and stderr as character devices; other
// descriptors are EBADF.
func wFdstatGet(vm *VM, st []uint64) {
	fd, p := uint32(st[0]), uint32(st[1])
	if fd != 1 && fd != 2 {
		st[0] = errnoBadf
		return
	}
	var b [24]byte
	b[0] = 2 // character device
	if !vm.mem.Write(p, b[:]) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func wEnvironSizes(vm *VM, st []uint64) {
	size := 0
	for _, e := range vm.h.env {
		size += len(e) + 1
	}
	if !vm.putU32(uint32(st[0]), uint32(len(vm.h.env))) || !vm.putU32(uint32(st[1]), uint32(size)) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func wEnviron(vm *VM, st []uint64) {
	ptrs, buf := uint32(st[0]), uint32(st[1])
	for i, e := range vm.h.env {
		if !vm.putU32(ptrs+4*uint32(i), buf) || !vm.mem.Write(buf, []byte(e)) || !vm.mem.WriteByte(buf+uint32(len(e)), 0) {
			st[0] = errnoInval
			return
		}
		buf += uint32(len(e)) + 1
	}
	st[0] = errnoSuccess
}

func wArgsSizes(vm *VM, st []uint64) {
	if !vm.putU32(uint32(st[0]), 0) || !vm.putU32(uint32(st[1]), 0) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

// wasiNow returns the WASI clock id's time in ns.
func (vm *VM) wasiNow(id uint32) (uint64, bool) {
	follow := vm.h.cfg.WASIClock == WASIClockFollow
	switch id {
	case 0: // realtime
		if follow {
			return uint64(vm.h.clock.Now().UnixNano()), true
		}
		return uint64(time.Now().UnixNano()), true
	case 1: // monotonic
		var t int64
		if follow {
			t = int64(time.Second) + int64(vm.h.clock.Now().Sub(vm.started))
		} else {
			t = int64(time.Second) + int64(time.Since(processStart))
		}
		if t < vm.lastMono {
			t = vm.lastMono
		}
		vm.lastMono = t
		return uint64(t), true
	}
	return 0, false
}

func wClockTimeGet(vm *VM, st []uint64) {
	t, ok := vm.wasiNow(uint32(st[0]))
	if !ok {
		st[0] = errnoInval
		return
	}
	if !vm.putU64(uint32(st[2]), t) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func wClockResGet(vm *VM, st []uint64) {
	if id := uint32(st[0]); id > 1 {
		st[0] = errnoInval
		return
	}
	if !vm.putU64(uint32(st[1]), 1) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func wRandomGet(vm *VM, st []uint64) {
	b, ok := vm.mem.Read(uint32(st[0]), uint32(st[1]))
	if !ok {
		st[0] = errnoInval
		return
	}
	if _, err := io.ReadFull(vm.h.random, b); err != nil {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

// wPollOneoff: Envoy 1.33–1.38 answers ENOSYS (the Go runtime dies on it
// when it needs to sleep, e.g. after an explicit runtime.GC); >= 1.39
// answers success with no events.
func wPollOneoff(vm *VM, st []uint64) {
	if vm.h.cfg.Profile != ProfileEnvoy139 {
		st[0] = errnoNosys
		return
	}
	if !vm.putU32(uint32(st[3]), 0) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}
