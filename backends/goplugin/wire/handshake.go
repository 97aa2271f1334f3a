package wire

import plugin "github.com/hashicorp/go-plugin"

// ProtocolVersion changes whenever the service or the codec changes in a
// way an older peer cannot follow.
const ProtocolVersion = 1

// PluginName is the one plugin a detector binary serves.
const PluginName = "detector"

// Handshake is what the monitor and a plugin must agree on before talking.
// The cookie only stops a plugin binary from being run by hand by mistake;
// it is not a security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "BULKHEAD_DETECTOR_PLUGIN",
		MagicCookieValue: "9b1f5f2e-bulkhead-detector",
	}
}
