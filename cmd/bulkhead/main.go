package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// errUsage marks errors caused by how the command was called (exit code 2).
var errUsage = errors.New("usage")

func init() {
	// The enclave launcher applies its protections to one thread and
	// executes the plugin from it: keep main on the process's main thread.
	if len(os.Args) > 1 && os.Args[1] == enclave.Subcommand {
		runtime.LockOSThread()
	}
}

func main() {
	launchEnclave()
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// launchEnclave is `bulkhead enclave-exec`, which the monitor starts for
// each plugin: it becomes the plugin, or exits saying why it could not.
func launchEnclave() {
	if len(os.Args) > 1 && os.Args[1] == enclave.Subcommand {
		fmt.Fprintf(os.Stderr, "bulkhead %s: %v\n", enclave.Subcommand, enclave.Launch())
		os.Exit(125)
	}
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCommand(args[1:], stdout, stderr)
	case "record":
		err = recordCommand(args[1:], stderr)
	case "replay":
		err = replayCommand(args[1:], stdout, stderr)
	case "rules":
		err = rulesCommand(args[1:], stdout, stderr)
	case "plugins":
		err = pluginsCommand(args[1:], stdout, stderr)
	case "fleet":
		err = fleetCommand(args[1:], stdout, stderr)
	case "bench":
		err = benchCommand(args[1:], stdout, stderr)
	case "version", "--version":
		err = versionCommand(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	var exit *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "bulkhead %s: %v\n", args[0], err)
		return 2
	case errors.As(err, &exit):
		fmt.Fprintf(stderr, "bulkhead %s: %v\n", args[0], err)
		return exit.code // exitEventsLost, exitFindingsLost
	default:
		fmt.Fprintf(stderr, "bulkhead %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `bulkhead: a security monitor built on verified eBPF programs

Usage:
  bulkhead run [flags]            capture kernel events and write them as JSON lines or text
  bulkhead record --output FILE   capture kernel events into a recording
  bulkhead replay FILE [flags]    feed a recording through the detectors again
  bulkhead rules check FILE…      check rule files (YAML + CEL) without running the monitor
  bulkhead rules fields           list the fields rule conditions can use
  bulkhead plugins [--json]       the running monitor's detectors: state, restarts, protections
  bulkhead fleet tail --server URL [--host H] [--severity S]   findings every host exports to NATS JetStream, as they arrive
  bulkhead fleet status [--spool DIR]   this machine's exporters: connected, waiting in the spool, dropped
  bulkhead bench all [--quick]    capture overhead, throughput, latency and the fault matrix: JSON + Markdown report with charts
  bulkhead bench capture|throughput|resilience [flags]   one section
  bulkhead bench compare A.json B.json                  what changed between two runs
  bulkhead version                print version information

Run 'bulkhead <command> -h' for the flags of a command.
`)
}

// usageErr wraps a flag problem so that it exits with code 2.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// isHelp says whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// subcommandHelp is the answer of a command with subcommands to no
// subcommand (a usage error, exit 2) or to -h/--help (its usage, exit 0).
func subcommandHelp(command string, args []string, usage string, w io.Writer) (handled bool, err error) {
	if len(args) == 0 {
		fmt.Fprint(w, usage)
		return true, usageErr("%s needs a subcommand (see above)", command)
	}
	if isHelp(args[0]) {
		fmt.Fprint(w, usage)
		return true, flag.ErrHelp
	}
	return false, nil
}

// isTerminal says whether w is a terminal (progress bars and colours
// only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// parseFlags parses args, turning a parse error into a usage error (exit 2);
// -h stays flag.ErrHelp (exit 0).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	return nil
}

// newLogger builds the one logger the process uses: JSON on stderr, or a
// console format when stderr is a terminal.
func newLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, usageErr("--log-level %q: use debug, info, warn or error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if isTerminal(stderr) {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), lvl)
	return zap.New(core), nil
}
