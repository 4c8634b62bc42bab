module github.com/stoa-platform/stoa-guard/cmd/mcp-demo

go 1.26

require github.com/modelcontextprotocol/go-sdk v1.8.0 // indirect
