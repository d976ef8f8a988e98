// Package defs holds the HL7 v2 definitions for every version from 2.1 to
// 2.8.2: message structures with their groups, the trigger event to
// structure map, segments with their fields, data types with their
// components, and the HL7 tables. The data is generated into one embedded,
// deduplicated, compressed file that is decoded a version at a time on
// first use (see README.md for where each fact comes from and how to
// regenerate it, data.go for the loading); this file is the API over it.
package defs

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Unbounded is the Max of an element that may repeat without limit.
const Unbounded = -1

// Field is one field of a segment, or one component of a data type.
type Field struct {
	Name string
	// Type is the data type ID (ST, CWE, XPN...).
	Type string
	// Min is 1 for required elements, 0 for optional ones.
	Min int
	// Max is the number of repetitions allowed (1, a bound, or Unbounded).
	Max int
	// Len is the maximum length in characters, 0 when the source gives none.
	Len int
	// Table is the HL7 or user-defined table number, 0 for none.
	Table int
}

// Segment is a segment definition.
type Segment struct {
	ID     string
	Name   string
	Fields []Field
}

// DataType is a data type definition; primitive types have no components.
type DataType struct {
	ID         string
	Components []Field
}

// Primitive reports whether the type has no components.
func (d *DataType) Primitive() bool { return len(d.Components) == 0 }

// Node is an element of a message structure: a segment or a group.
type Node struct {
	// Name is the segment ID, or the group name (e.g. PATIENT_RESULT).
	Name string
	// Group is true for groups; Choice is true for a group of which exactly
	// one child appears.
	Group, Choice bool
	Min, Max      int
	Children      []Node
}

// Structure is a message structure such as ADT_A01.
type Structure struct {
	ID    string
	Nodes []Node
}

// Table is an HL7 table with its codes.
type Table struct {
	ID    int
	Name  string
	Codes []string
}

// Version is the set of definitions of one HL7 version.
type Version struct {
	ID         string
	segments   map[string]*Segment
	dataTypes  map[string]*DataType
	structures map[string]*Structure
	// events maps "ADT^A04" to "ADT_A01".
	events map[string]string
	// names holds, per structure, every segment ID it mentions.
	names map[*Structure]map[string]bool
}

// Mentions reports whether structure s has segment id anywhere in its tree.
// A structure with the ANYHL7SEGMENT wildcard (2.7+) mentions every segment.
func (v *Version) Mentions(s *Structure, id string) bool {
	n := v.names[s]
	return n[id] || n[AnySegment]
}

// AnySegment is the wildcard node name hl7apy uses from 2.7 on.
const AnySegment = "ANYHL7SEGMENT"

func collectNames(ns []Node, into map[string]bool) {
	for _, n := range ns {
		if n.Group {
			collectNames(n.Children, into)
		} else {
			into[n.Name] = true
		}
	}
}

// Segment returns the definition of segment id.
func (v *Version) Segment(id string) (*Segment, bool) { s, ok := v.segments[id]; return s, ok }

// DataType returns the definition of data type id.
func (v *Version) DataType(id string) (*DataType, bool) { d, ok := v.dataTypes[id]; return d, ok }

// Structure returns the message structure id (e.g. ORU_R01).
func (v *Version) Structure(id string) (*Structure, bool) { s, ok := v.structures[id]; return s, ok }

// StructureFor returns the structure of message code and trigger event
// (ADT, A04 -> ADT_A01) in this version.
func (v *Version) StructureFor(code, event string) (*Structure, bool) {
	if id, ok := v.events[code+"^"+event]; ok {
		return v.Structure(id)
	}
	return nil, false
}

// Structures returns every structure ID, sorted.
func (v *Version) Structures() []string { return sortedKeys(v.structures) }

// SegmentIDs returns every segment ID, sorted.
func (v *Version) SegmentIDs() []string { return sortedKeys(v.segments) }

// Events returns every "CODE^EVENT" the version maps to a structure, sorted.
func (v *Version) Events() []string { return sortedKeys(v.events) }

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// resolved caches Lookup answers by the ID as written in MSH-12, so the hot
// path is one map read. It is bounded because MSH-12 comes from the
// network: a hostile sender must not grow it without limit.
var (
	resolved      sync.Map
	resolvedCount atomic.Int32
)

const maxResolved = 256

// Versions returns the supported version IDs in ascending order.
func Versions() []string {
	return append([]string(nil), data().versionIDs...)
}

// Lookup returns the definitions of a version. It accepts a version ID as
// senders write it in MSH-12: an exact match first ("2.5.1"), else the
// nearest defined version at or below it with the same major.minor ("2.7.1"
// reads as 2.7, "2.8.3" as 2.8.2). Definitions are built on first use.
func Lookup(id string) (*Version, bool) {
	if v, ok := resolved.Load(id); ok {
		return v.(*Version), true
	}
	trimmed := strings.TrimSpace(id)
	best := -1
	for i, vid := range data().versionIDs {
		if vid == trimmed {
			best = i
			break
		}
		if sameMinor(vid, trimmed) && compareVersion(vid, trimmed) <= 0 {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	v := loaders()[best]()
	if resolvedCount.Load() < maxResolved {
		if _, loaded := resolved.LoadOrStore(id, v); !loaded {
			resolvedCount.Add(1)
		}
	}
	return v, true
}

func sameMinor(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return len(pa) >= 2 && len(pb) >= 2 && pa[0] == pb[0] && pa[1] == pb[1]
}

// compareVersion compares dotted numeric versions.
func compareVersion(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x = atoi(pa[i])
		}
		if i < len(pb) {
			y = atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

var tableIndex = sync.OnceValue(func() map[int]*Table {
	ts := tables()
	m := make(map[int]*Table, len(ts))
	for i := range ts {
		m[ts[i].ID] = &ts[i]
	}
	return m
})

// LookupTable returns HL7 table n.
func LookupTable(n int) (*Table, bool) { t, ok := tableIndex()[n]; return t, ok }

// Has reports whether code is in the table.
func (t *Table) Has(code string) bool {
	i := sort.SearchStrings(t.Codes, code)
	return i < len(t.Codes) && t.Codes[i] == code
}

// HasBytes is Has for a code still in wire bytes; it does not allocate.
func (t *Table) HasBytes(code []byte) bool {
	lo, hi := 0, len(t.Codes)
	for lo < hi {
		mid := (lo + hi) / 2
		if t.Codes[mid] < string(code) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(t.Codes) && t.Codes[lo] == string(code)
}
