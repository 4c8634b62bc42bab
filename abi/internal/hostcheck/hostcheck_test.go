// Package hostcheck asserts, at compile time of its test, that abi.Host
// implements filter.Host. It lives apart so that the rest of abi's tests do
// not depend on package filter building.
package hostcheck

import (
	"testing"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter"
)

var _ filter.Host = abi.Host{}

func TestHostImplementsFilterHost(t *testing.T) {
	var h filter.Host = abi.Host{}
	if h == nil {
		t.Fatal("abi.Host does not implement filter.Host")
	}
}
