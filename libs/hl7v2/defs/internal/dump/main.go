// Command dump prints definitions from the embedded data file, for people:
// the data file is binary, so this replaces reading generated Go.
//
//	go run ./hl7v2/defs/internal/dump 2.5.1            the version's segment, structure and event lists
//	go run ./hl7v2/defs/internal/dump 2.5.1 PID        a segment's fields
//	go run ./hl7v2/defs/internal/dump 2.5.1 CX         a data type's components
//	go run ./hl7v2/defs/internal/dump 2.5.1 ORU_R01    a structure's tree
//	go run ./hl7v2/defs/internal/dump 2.5.1 ORU^R01    the structure an event uses
//	go run ./hl7v2/defs/internal/dump table 1          an HL7 table's codes
//
// Run it from libs/.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dump:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, args []string) error {
	if len(args) == 2 && args[0] == "table" {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("table number %q: %w", args[1], err)
		}
		t, ok := defs.LookupTable(n)
		if !ok {
			return fmt.Errorf("no table %04d", n)
		}
		fmt.Fprintf(w, "%04d %s\n%s\n", t.ID, t.Name, strings.Join(t.Codes, " "))
		return nil
	}
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("usage: dump VERSION [SEGMENT|TYPE|STRUCTURE|CODE^EVENT] | dump table N")
	}
	v, ok := defs.Lookup(args[0])
	if !ok {
		return fmt.Errorf("no version %q (have %s)", args[0], strings.Join(defs.Versions(), " "))
	}
	if len(args) == 1 {
		fmt.Fprintf(w, "version %s\nsegments: %s\nstructures: %s\nevents: %s\n", v.ID,
			strings.Join(v.SegmentIDs(), " "), strings.Join(v.Structures(), " "), strings.Join(v.Events(), " "))
		return nil
	}
	id := args[1]
	if code, event, ok := strings.Cut(id, "^"); ok {
		s, ok := v.StructureFor(code, event)
		if !ok {
			return fmt.Errorf("%s has no structure for %s", v.ID, id)
		}
		id = s.ID
	}
	found := false
	if s, ok := v.Segment(id); ok {
		found = true
		fmt.Fprintf(w, "segment %s %s (%s)\n", s.ID, s.Name, v.ID)
		writeFields(w, s.ID, s.Fields)
	}
	if d, ok := v.DataType(id); ok {
		found = true
		fmt.Fprintf(w, "data type %s (%s)\n", d.ID, v.ID)
		writeFields(w, d.ID, d.Components)
	}
	if s, ok := v.Structure(id); ok {
		found = true
		fmt.Fprintf(w, "structure %s (%s)\n", s.ID, v.ID)
		writeNodes(w, s.Nodes, "  ")
	}
	if !found {
		return fmt.Errorf("%s defines no segment, data type or structure %q", v.ID, id)
	}
	return nil
}

func card(min, max int) string {
	if max == defs.Unbounded {
		return fmt.Sprintf("[%d..*]", min)
	}
	return fmt.Sprintf("[%d..%d]", min, max)
}

func writeFields(w io.Writer, id string, fs []defs.Field) {
	for i, f := range fs {
		fmt.Fprintf(w, "  %s-%d\t%-4s %-7s len %-5d table %04d  %s\n", id, i+1, f.Type, card(f.Min, f.Max), f.Len, f.Table, f.Name)
	}
}

func writeNodes(w io.Writer, ns []defs.Node, indent string) {
	for _, n := range ns {
		kind := ""
		if n.Choice {
			kind = " (choice)"
		} else if n.Group {
			kind = " (group)"
		}
		fmt.Fprintf(w, "%s%s %s%s\n", indent, n.Name, card(n.Min, n.Max), kind)
		writeNodes(w, n.Children, indent+"  ")
	}
}
