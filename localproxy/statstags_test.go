package localproxy

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envoyStatsTags reads stats_config.stats_tags from envoy.yaml with a line
// scanner (the root module has no YAML dependency): "- tag_name: X" then
// "regex: '...'" lines, until the block's indentation ends.
func envoyStatsTags(t *testing.T, path string) []TagRule {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var rules []TagRule
	in := false
	indent := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		ind := len(line) - len(strings.TrimLeft(line, " "))
		if trim == "stats_tags:" {
			in, indent = true, ind
			continue
		}
		if !in {
			continue
		}
		if ind <= indent && !strings.HasPrefix(trim, "- ") {
			break
		}
		trim = strings.TrimPrefix(trim, "- ")
		k, v, ok := strings.Cut(trim, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		} else if len(v) >= 2 && v[0] == '"' {
			require.NotContains(t, v, `\`, "double-quoted YAML escapes are not read here: use single quotes")
			v = v[1 : len(v)-1]
		}
		switch strings.TrimSpace(k) {
		case "tag_name":
			rules = append(rules, TagRule{Name: v})
		case "regex":
			require.NotEmpty(t, rules, "regex before tag_name")
			rules[len(rules)-1].Regex = v
		}
	}
	require.NoError(t, sc.Err())
	return rules
}

func TestStatsTagsMatchEnvoyYAML(t *testing.T) {
	if _, err := os.Stat("../envoy.yaml"); err != nil {
		t.Skip("envoy.yaml not present")
	}
	assert.Equal(t, StatsTags, envoyStatsTags(t, "../envoy.yaml"))
}
