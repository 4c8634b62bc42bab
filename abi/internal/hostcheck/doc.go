// Package hostcheck holds one compile-time test: abi.Host implements
// filter.Host. It has no code of its own.
package hostcheck
