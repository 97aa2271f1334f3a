// Command oldprotocol is a TEST plugin that completes go-plugin's handshake
// with bulkhead's cookie but an older protocol version, as a plugin built
// against an earlier bulkhead release would.
package main

import (
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	plugin "github.com/hashicorp/go-plugin"
)

func main() {
	hs := wire.Handshake()
	hs.ProtocolVersion--
	plugin.Serve(&plugin.ServeConfig{HandshakeConfig: hs, Plugins: plugin.PluginSet{}, GRPCServer: plugin.DefaultGRPCServer})
}
