package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/rules/ruleset"
)

// rulesCommand is `bulkhead rules check FILE…` and `bulkhead rules fields`.
func rulesCommand(args []string, stdout, stderr io.Writer) error {
	const rulesUsage = "Usage:\n  bulkhead rules check [--no-default-rules] FILE…   check rule files (YAML + CEL) without running the monitor\n  bulkhead rules fields                            list the fields rule conditions can use\n"
	if ok, err := subcommandHelp("rules", args, rulesUsage, stderr); ok {
		return err
	}
	switch args[0] {
	case "fields":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprint(stderr, "Usage: bulkhead rules fields\n\nLists the fields rule conditions can use, with their types.\n")
			return flag.ErrHelp
		}
		fmt.Fprintf(stdout, "%-14s %-14s %s\n", "field", "type", "meaning")
		for _, f := range ruleset.Fields {
			fmt.Fprintf(stdout, "%-14s %-14s %s\n", f.Name, f.Type, f.Doc)
		}
		return nil
	case "check":
	default:
		return usageErr("unknown rules subcommand %q: use check or fields", args[0])
	}
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noDefaults := fs.Bool("no-default-rules", false, "check the files alone, not after the default rules they may change")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead rules check [--no-default-rules] FILE…\n\nLoads the rule files as the rules detector would (after its default rules) and reports every\nproblem with its file, line and rule id. Exits 1 if there is any.\n\n")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 && *noDefaults {
		return usageErr("name at least one rule file")
	}
	srcs, err := rules.Config{Files: files, NoDefaultRules: *noDefaults}.Sources()
	if err != nil {
		return err
	}
	set, problems, err := ruleset.LoadSources(srcs...)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	names := make([]string, len(srcs))
	for i, src := range srcs {
		names[i] = src.Name
	}
	fmt.Fprintf(stdout, "%d rules loaded, %d disabled, %d rejected (%s)\n", len(set.Rules), set.Disabled, len(problems), strings.Join(names, ", "))
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s) in the rule files", len(problems))
	}
	return nil
}
