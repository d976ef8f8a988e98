package modules

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteList prints the modules as a table, dependencies first: name,
// dependencies, input topic, output topics (without kafka.topic_prefix).
func (r *Registry) WriteList(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tDEPENDS ON\tINPUT\tOUTPUTS")
	for _, m := range r.mods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, orDash(strings.Join(m.Deps, ",")), orDash(m.Input), orDash(strings.Join(m.Outputs, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
