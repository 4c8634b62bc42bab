package wasmhost

import (
	"sort"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// Profile selects which Envoy release the host imitates: the set of WASI
// functions it provides, how poll_oneoff behaves and which host calls are
// allowed while the module initialises or while the host calls its allocator.
// The facts come from proxy-wasm-cpp-host (src/exports.cc, src/wasm.cc,
// include/proxy-wasm/wasm.h) before and after its commit 94091cd
// ("add all wasi hostcalls used by Go SDK", April 2026).
type Profile int

const (
	// ProfileEnvoy133 is Envoy 1.33 to 1.38: 18 WASI functions,
	// poll_oneoff returns ENOSYS (52), short restricted-callback lists.
	ProfileEnvoy133 Profile = iota
	// ProfileEnvoy139 is Envoy 1.39 and later: all of WASI preview1 but
	// proc_raise, poll_oneoff succeeds with nevents = 0, longer lists.
	ProfileEnvoy139
)

// String returns the profile's name: "1.33–1.38" or ">=1.39".
func (p Profile) String() string {
	if p == ProfileEnvoy139 {
		return ">=1.39"
	}
	return "1.33–1.38"
}

// ParseProfile accepts "1.33", "1.33-1.38", "1.33–1.38", "1.39", ">=1.39".
func ParseProfile(s string) (Profile, bool) {
	switch strings.TrimSpace(s) {
	case "1.33", "1.33-1.38", "1.33–1.38":
		return ProfileEnvoy133, true
	case "1.39", ">=1.39":
		return ProfileEnvoy139, true
	}
	return 0, false
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func ps(n int) []api.ValueType {
	p := make([]api.ValueType, n)
	for i := range p {
		p[i] = i32
	}
	return p
}

var r1 = []api.ValueType{i32}

// wasiSig gives the signature Envoy registers for each WASI function. They
// follow cpp-host's C++ declarations, which differ from preview1 for
// path_link (6 params, not 7) and path_symlink (4, not 5): a module importing
// the standard signature fails in Envoy with an import type mismatch, and here.
var wasiSig = map[string][2][]api.ValueType{
	"fd_write":                {ps(4), r1},
	"fd_read":                 {ps(4), r1},
	"fd_seek":                 {{i32, i64, i32, i32}, r1},
	"fd_close":                {ps(1), r1},
	"fd_fdstat_get":           {ps(2), r1},
	"fd_fdstat_set_flags":     {ps(2), r1},
	"fd_fdstat_set_rights":    {{i32, i64, i64}, r1},
	"environ_get":             {ps(2), r1},
	"environ_sizes_get":       {ps(2), r1},
	"args_get":                {ps(2), r1},
	"args_sizes_get":          {ps(2), r1},
	"clock_time_get":          {{i32, i64, i32}, r1},
	"clock_res_get":           {ps(2), r1},
	"fd_advise":               {{i32, i64, i64, i32}, r1},
	"fd_allocate":             {{i32, i64, i64}, r1},
	"fd_datasync":             {ps(1), r1},
	"fd_filestat_set_size":    {{i32, i64}, r1},
	"fd_filestat_set_times":   {{i32, i64, i64, i32}, r1},
	"fd_pread":                {{i32, i32, i32, i64, i32}, r1},
	"fd_pwrite":               {{i32, i32, i32, i64, i32}, r1},
	"fd_readdir":              {{i32, i32, i32, i64, i32}, r1},
	"fd_renumber":             {ps(2), r1},
	"fd_sync":                 {ps(1), r1},
	"fd_tell":                 {ps(2), r1},
	"path_create_directory":   {ps(3), r1},
	"path_filestat_set_times": {{i32, i32, i32, i32, i64, i64, i32}, r1},
	"path_link":               {ps(6), r1},
	"path_readlink":           {ps(6), r1},
	"path_remove_directory":   {ps(3), r1},
	"path_rename":             {ps(6), r1},
	"path_symlink":            {ps(4), r1},
	"path_unlink_file":        {ps(3), r1},
	"sock_accept":             {ps(3), r1},
	"sock_recv":               {ps(6), r1},
	"sock_send":               {ps(5), r1},
	"sock_shutdown":           {ps(2), r1},
	"random_get":              {ps(2), r1},
	"sched_yield":             {nil, r1},
	"poll_oneoff":             {ps(4), r1},
	"proc_exit":               {ps(1), nil},
	"path_open":               {{i32, i32, i32, i32, i32, i64, i64, i32, i32}, r1},
	"fd_prestat_get":          {ps(2), r1},
	"fd_prestat_dir_name":     {ps(3), r1},
	"path_filestat_get":       {ps(5), r1},
	"fd_filestat_get":         {ps(2), r1},
}

// wasi133 is the WASI set of Envoy 1.33–1.38 (cpp-host FOR_ALL_WASI_FUNCTIONS before 94091cd).
var wasi133 = []string{"fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get", "fd_fdstat_set_flags",
	"environ_get", "environ_sizes_get", "args_get", "args_sizes_get", "clock_time_get", "random_get",
	"sched_yield", "poll_oneoff", "proc_exit", "path_open", "fd_prestat_get", "fd_prestat_dir_name"}

// WASIFunctions lists the WASI function names the profile provides (under both
// wasi_snapshot_preview1 and wasi_unstable).
func (p Profile) WASIFunctions() []string {
	if p == ProfileEnvoy133 {
		return append([]string(nil), wasi133...)
	}
	out := make([]string, 0, len(wasiSig))
	for n := range wasiSig {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// envSig gives every env (proxy_*) host function Envoy registers for ABI 0.2.x,
// plus the two emscripten helpers. All return i32 but emscripten_notify_memory_growth.
var envSig = map[string][2][]api.ValueType{
	"proxy_log":                          {ps(3), r1},
	"proxy_get_status":                   {ps(3), r1},
	"proxy_set_property":                 {ps(4), r1},
	"proxy_get_property":                 {ps(4), r1},
	"proxy_send_local_response":          {ps(8), r1},
	"proxy_get_shared_data":              {ps(5), r1},
	"proxy_set_shared_data":              {ps(5), r1},
	"proxy_register_shared_queue":        {ps(3), r1},
	"proxy_resolve_shared_queue":         {ps(5), r1},
	"proxy_dequeue_shared_queue":         {ps(3), r1},
	"proxy_enqueue_shared_queue":         {ps(3), r1},
	"proxy_get_header_map_value":         {ps(5), r1},
	"proxy_add_header_map_value":         {ps(5), r1},
	"proxy_replace_header_map_value":     {ps(5), r1},
	"proxy_remove_header_map_value":      {ps(3), r1},
	"proxy_get_header_map_pairs":         {ps(3), r1},
	"proxy_set_header_map_pairs":         {ps(3), r1},
	"proxy_get_header_map_size":          {ps(2), r1},
	"proxy_get_buffer_status":            {ps(3), r1},
	"proxy_get_buffer_bytes":             {ps(5), r1},
	"proxy_set_buffer_bytes":             {ps(5), r1},
	"proxy_http_call":                    {ps(10), r1},
	"proxy_grpc_call":                    {ps(12), r1},
	"proxy_grpc_stream":                  {ps(9), r1},
	"proxy_grpc_close":                   {ps(1), r1},
	"proxy_grpc_cancel":                  {ps(1), r1},
	"proxy_grpc_send":                    {ps(4), r1},
	"proxy_set_tick_period_milliseconds": {ps(1), r1},
	"proxy_get_current_time_nanoseconds": {ps(1), r1},
	"proxy_define_metric":                {ps(4), r1},
	"proxy_increment_metric":             {{i32, i64}, r1},
	"proxy_record_metric":                {{i32, i64}, r1},
	"proxy_get_metric":                   {ps(2), r1},
	"proxy_set_effective_context":        {ps(1), r1},
	"proxy_done":                         {nil, r1},
	"proxy_call_foreign_function":        {ps(6), r1},
	// ABI specific (see abiEnv).
	"proxy_get_configuration": {ps(2), r1},
	"proxy_continue_request":  {nil, r1},
	"proxy_continue_response": {nil, r1},
	"proxy_clear_route_cache": {nil, r1},
	"proxy_continue_stream":   {ps(1), r1},
	"proxy_close_stream":      {ps(1), r1},
	"proxy_get_log_level":     {ps(1), r1},
	// emscripten
	"pthread_equal":                   {ps(2), r1},
	"emscripten_notify_memory_growth": {ps(1), nil},
}

// ABIVersion is the proxy-wasm ABI a module declares with its marker export.
type ABIVersion int

// ABI versions.
const (
	ABIUnknown ABIVersion = iota
	ABI010
	ABI020
	ABI021
)

func (a ABIVersion) String() string {
	switch a {
	case ABI010:
		return "0.1.0"
	case ABI020:
		return "0.2.0"
	case ABI021:
		return "0.2.1"
	}
	return "unknown"
}

// envAvailable reports whether Envoy registers env function name for abi.
func envAvailable(name string, abi ABIVersion) bool {
	switch name {
	case "proxy_get_configuration", "proxy_continue_request", "proxy_continue_response", "proxy_clear_route_cache":
		return abi == ABI010
	case "proxy_continue_stream", "proxy_close_stream":
		return abi == ABI020 || abi == ABI021
	case "proxy_get_log_level":
		return abi == ABI021
	}
	_, ok := envSig[name]
	return ok
}

// Restricted-callback lists (module-less names; they apply to wasi_unstable
// and wasi_snapshot_preview1 alike).
var initAllowed133 = []string{"env.emscripten_notify_memory_growth", "env.proxy_log", "fd_write",
	"args_sizes_get", "args_get", "environ_sizes_get", "environ_get", "fd_prestat_get",
	"fd_prestat_dir_name", "clock_time_get", "random_get", "fd_fdstat_get", "fd_fdstat_set_flags"}

var initAllowed139 = []string{"env.emscripten_notify_memory_growth", "env.proxy_log", "fd_write",
	"args_sizes_get", "args_get", "environ_sizes_get", "environ_get", "clock_time_get", "clock_res_get",
	"random_get", "poll_oneoff", "fd_fdstat_get", "fd_fdstat_set_flags",
	"fd_advise", "fd_allocate", "fd_datasync", "fd_fdstat_set_rights", "fd_filestat_get",
	"fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_prestat_dir_name", "fd_prestat_get",
	"fd_pwrite", "fd_readdir", "fd_renumber", "fd_sync", "fd_tell", "path_create_directory",
	"path_filestat_get", "path_filestat_set_times", "path_link", "path_readlink", "path_remove_directory",
	"path_rename", "path_symlink", "path_unlink_file", "sock_accept", "sock_recv", "sock_send", "sock_shutdown"}

var allocAllowed133 = []string{"env.proxy_log", "fd_write", "clock_time_get"}
var allocAllowed139 = []string{"env.proxy_log", "fd_write", "clock_time_get", "poll_oneoff"}

// InitAllowed lists the host calls allowed while `_initialize` / `main` /
// `_start` run ("env.<name>" for proxy calls, the bare name for WASI calls).
func (p Profile) InitAllowed() []string {
	if p == ProfileEnvoy139 {
		return append([]string(nil), initAllowed139...)
	}
	return append([]string(nil), initAllowed133...)
}

// AllocAllowed lists the host calls allowed while the host runs the guest allocator.
func (p Profile) AllocAllowed() []string {
	if p == ProfileEnvoy139 {
		return append([]string(nil), allocAllowed139...)
	}
	return append([]string(nil), allocAllowed133...)
}

// exportSig gives the signature Envoy requires of each export it looks up.
// A module exporting one of these names with another signature is refused:
// "Bad function signature for: <name>, want: ... -> ..., but the module exports: ... -> ...".
var exportSig = map[string][2][]api.ValueType{
	"_initialize":                             {nil, nil},
	"_start":                                  {nil, nil},
	"main":                                    {ps(2), r1},
	"__main_void":                             {nil, r1},
	"malloc":                                  {ps(1), r1},
	"proxy_on_memory_allocate":                {ps(1), r1},
	"proxy_on_context_create":                 {ps(2), nil},
	"proxy_on_vm_start":                       {ps(2), r1},
	"proxy_validate_configuration":            {ps(2), r1},
	"proxy_on_configure":                      {ps(2), r1},
	"proxy_on_tick":                           {ps(1), nil},
	"proxy_on_new_connection":                 {ps(1), r1},
	"proxy_on_downstream_data":                {ps(3), r1},
	"proxy_on_upstream_data":                  {ps(3), r1},
	"proxy_on_downstream_connection_close":    {ps(2), nil},
	"proxy_on_upstream_connection_close":      {ps(2), nil},
	"proxy_on_request_body":                   {ps(3), r1},
	"proxy_on_request_trailers":               {ps(2), r1},
	"proxy_on_request_metadata":               {ps(2), r1},
	"proxy_on_response_body":                  {ps(3), r1},
	"proxy_on_response_trailers":              {ps(2), r1},
	"proxy_on_response_metadata":              {ps(2), r1},
	"proxy_on_http_call_response":             {ps(5), nil},
	"proxy_on_grpc_receive_initial_metadata":  {ps(3), nil},
	"proxy_on_grpc_receive_trailing_metadata": {ps(3), nil},
	"proxy_on_grpc_receive":                   {ps(3), nil},
	"proxy_on_grpc_close":                     {ps(3), nil},
	"proxy_on_queue_ready":                    {ps(2), nil},
	"proxy_on_foreign_function":               {ps(3), nil},
	"proxy_on_done":                           {ps(1), r1},
	"proxy_on_log":                            {ps(1), nil},
	"proxy_on_delete":                         {ps(1), nil},
}

// headersSig: proxy_on_request_headers / proxy_on_response_headers differ by ABI.
func headersSig(abi ABIVersion) [2][]api.ValueType {
	if abi == ABI010 {
		return [2][]api.ValueType{ps(2), r1}
	}
	return [2][]api.ValueType{ps(3), r1}
}

func typeList(ts []api.ValueType) string {
	if len(ts) == 0 {
		return "void"
	}
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(api.ValueTypeName(t))
	}
	return b.String()
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
