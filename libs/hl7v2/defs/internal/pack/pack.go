// Package pack writes the definitions data file that package defs embeds
// (defs.bin.gz). It lives apart from both the generator and package defs so
// that the generator can write the file without importing the package that
// embeds it (a missing or broken file must not stop its own regeneration),
// and so that the tests of package defs can encode data of their own and
// check that the decoder reads back what was written.
//
// # Format
//
// The file is gzip (RFC 1952, no name, zero modification time) around one
// payload of unsigned LEB128 varints ("uv") and zigzag signed varints
// ("sv"), in this order:
//
//	magic      "HL7DEFS1"
//	strings    uv count; count × uv length; the bytes of every string, concatenated
//	fields     uv count; count × (uv name, uv type, sv min, sv max, sv len, sv table)
//	segments   uv count; count × (uv id, uv name, uv n, n × uv field)
//	data types uv count; count × (uv id, uv n, n × uv field)
//	structures uv count; count × (uv id, nodes)
//	           nodes = uv n, n × (uv name, uv flags, sv min, sv max, [nodes if flags&1])
//	           flags: 1 group, 2 choice
//	tables     uv count; count × (sv number, uv name, uv n, n × uv code)
//	versions   uv count; count × (uv id, uv n, n × uv segment, uv n, n × uv data type,
//	           uv n, n × uv structure, uv n, n × (uv event, uv structure id))
//
// Names, IDs and codes are indexes into the string table; fields, segments,
// data types and structures are indexes into their own tables. Every item
// appears once however many versions share it: a version is a list of
// references. Strings are sorted; items are numbered in order of first
// appearance (versions ascending, items in the order given), so the output
// depends only on the input.
package pack

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"sort"
)

// Magic opens the payload; the digit is the format version.
const Magic = "HL7DEFS1"

// Node flags.
const (
	FlagGroup  = 1
	FlagChoice = 2
)

// Field is a field of a segment or a component of a data type.
type Field struct {
	Name       string
	Type       string
	Min, Max   int
	Len, Table int
}

// Segment is a segment with its fields.
type Segment struct {
	ID, Name string
	Fields   []Field
}

// DataType is a data type with its components (none for primitives).
type DataType struct {
	ID         string
	Components []Field
}

// Node is a segment or a group of a message structure.
type Node struct {
	Name          string
	Group, Choice bool
	Min, Max      int
	Children      []Node
}

// Structure is a message structure.
type Structure struct {
	ID    string
	Nodes []Node
}

// Version is the definitions of one HL7 version.
type Version struct {
	ID         string
	Segments   []Segment
	DataTypes  []DataType
	Structures []Structure
	// Events are {"ADT^A04", "ADT_A01"} pairs.
	Events [][2]string
}

// Table is an HL7 table.
type Table struct {
	ID    int
	Name  string
	Codes []string
}

// Stats counts what Encode wrote: the references the versions make
// (FieldRefs counts the fields of the unique segments and data types) and
// the unique items stored.
type Stats struct {
	FieldRefs, Fields         int
	SegmentRefs, Segments     int
	DataTypeRefs, DataTypes   int
	StructureRefs, Structures int
	Strings                   int
	Payload                   int
}

// Encode writes versions and tables as the gzip-compressed data file.
func Encode(versions []Version, tables []Table) ([]byte, Stats, error) {
	payload, st := Payload(versions, tables)
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, st, fmt.Errorf("gzip writer: %w", err)
	}
	if _, err := zw.Write(payload); err != nil {
		return nil, st, fmt.Errorf("compressing: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, st, fmt.Errorf("compressing: %w", err)
	}
	return out.Bytes(), st, nil
}

// Payload returns the uncompressed payload.
func Payload(versions []Version, tables []Table) ([]byte, Stats) {
	e := newEncoder()
	type verRefs struct {
		id                 string
		segs, dts, structs []int
		events             [][2]string
	}
	refs := make([]verRefs, len(versions))
	for i, v := range versions {
		r := verRefs{id: v.ID, events: v.Events}
		e.str(v.ID)
		for _, s := range v.Segments {
			r.segs = append(r.segs, e.segment(s))
		}
		for _, d := range v.DataTypes {
			r.dts = append(r.dts, e.dataType(d))
		}
		for _, s := range v.Structures {
			r.structs = append(r.structs, e.structure(s))
		}
		for _, ev := range v.Events {
			e.str(ev[0])
			e.str(ev[1])
		}
		refs[i] = r
	}
	for _, t := range tables {
		e.str(t.Name)
		for _, c := range t.Codes {
			e.str(c)
		}
	}
	// The string table is sorted, so string indexes are only known now:
	// items were recorded with their strings and are written here.
	strs := make([]string, 0, len(e.strings))
	for s := range e.strings {
		strs = append(strs, s)
	}
	sort.Strings(strs)
	for i, s := range strs {
		e.strings[s] = i
	}

	var b []byte
	b = append(b, Magic...)
	b = binary.AppendUvarint(b, uint64(len(strs)))
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
	}
	for _, s := range strs {
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.fields)))
	for _, f := range e.fields {
		b = e.appendField(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(e.segments)))
	for _, s := range e.segments {
		b = e.appendStr(b, s.ID)
		b = e.appendStr(b, s.Name)
		b = appendRefs(b, e.segFields[s.ID+"\x00"+s.Name+"\x00"+fieldKey(s.Fields)])
	}
	b = binary.AppendUvarint(b, uint64(len(e.dataTypes)))
	for _, d := range e.dataTypes {
		b = e.appendStr(b, d.ID)
		b = appendRefs(b, e.dtFields[d.ID+"\x00"+fieldKey(d.Components)])
	}
	b = binary.AppendUvarint(b, uint64(len(e.structures)))
	for _, s := range e.structures {
		b = e.appendStr(b, s.ID)
		b = e.appendNodes(b, s.Nodes)
	}
	b = binary.AppendUvarint(b, uint64(len(tables)))
	for _, t := range tables {
		b = binary.AppendVarint(b, int64(t.ID))
		b = e.appendStr(b, t.Name)
		b = binary.AppendUvarint(b, uint64(len(t.Codes)))
		for _, c := range t.Codes {
			b = e.appendStr(b, c)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(refs)))
	for _, r := range refs {
		b = e.appendStr(b, r.id)
		b = appendRefs(b, r.segs)
		b = appendRefs(b, r.dts)
		b = appendRefs(b, r.structs)
		b = binary.AppendUvarint(b, uint64(len(r.events)))
		for _, ev := range r.events {
			b = e.appendStr(b, ev[0])
			b = e.appendStr(b, ev[1])
		}
	}
	e.stats.Strings = len(strs)
	e.stats.Fields = len(e.fields)
	e.stats.Segments = len(e.segments)
	e.stats.DataTypes = len(e.dataTypes)
	e.stats.Structures = len(e.structures)
	e.stats.Payload = len(b)
	return b, e.stats
}

// encoder numbers unique items by their content.
type encoder struct {
	strings    map[string]int
	fieldIDs   map[Field]int
	fields     []Field
	segmentIDs map[string]int
	segments   []Segment
	segFields  map[string][]int
	dtIDs      map[string]int
	dataTypes  []DataType
	dtFields   map[string][]int
	structIDs  map[string]int
	structures []Structure
	stats      Stats
}

func newEncoder() *encoder {
	return &encoder{
		strings: map[string]int{}, fieldIDs: map[Field]int{}, segmentIDs: map[string]int{},
		segFields: map[string][]int{}, dtIDs: map[string]int{}, dtFields: map[string][]int{},
		structIDs: map[string]int{},
	}
}

func (e *encoder) str(s string) { e.strings[s] = 0 }

func (e *encoder) field(f Field) int {
	e.stats.FieldRefs++
	if id, ok := e.fieldIDs[f]; ok {
		return id
	}
	e.str(f.Name)
	e.str(f.Type)
	id := len(e.fields)
	e.fieldIDs[f] = id
	e.fields = append(e.fields, f)
	return id
}

func (e *encoder) fieldRefs(fs []Field) []int {
	out := make([]int, len(fs))
	for i, f := range fs {
		out[i] = e.field(f)
	}
	return out
}

// fieldKey renders fields unambiguously (%q quotes every string) as part
// of an item's identity.
func fieldKey(fs []Field) string {
	var b bytes.Buffer
	for _, f := range fs {
		fmt.Fprintf(&b, "%q %q %d %d %d %d;", f.Name, f.Type, f.Min, f.Max, f.Len, f.Table)
	}
	return b.String()
}

func (e *encoder) segment(s Segment) int {
	e.stats.SegmentRefs++
	key := s.ID + "\x00" + s.Name + "\x00" + fieldKey(s.Fields)
	if id, ok := e.segmentIDs[key]; ok {
		return id
	}
	e.str(s.ID)
	e.str(s.Name)
	e.segFields[key] = e.fieldRefs(s.Fields)
	id := len(e.segments)
	e.segmentIDs[key] = id
	e.segments = append(e.segments, s)
	return id
}

func (e *encoder) dataType(d DataType) int {
	e.stats.DataTypeRefs++
	key := d.ID + "\x00" + fieldKey(d.Components)
	if id, ok := e.dtIDs[key]; ok {
		return id
	}
	e.str(d.ID)
	e.dtFields[key] = e.fieldRefs(d.Components)
	id := len(e.dataTypes)
	e.dtIDs[key] = id
	e.dataTypes = append(e.dataTypes, d)
	return id
}

func nodeKey(b *bytes.Buffer, ns []Node) {
	for _, n := range ns {
		fmt.Fprintf(b, "%q %t %t %d %d(", n.Name, n.Group, n.Choice, n.Min, n.Max)
		nodeKey(b, n.Children)
		b.WriteString(")")
	}
}

func (e *encoder) nodeStrings(ns []Node) {
	for _, n := range ns {
		e.str(n.Name)
		e.nodeStrings(n.Children)
	}
}

func (e *encoder) structure(s Structure) int {
	e.stats.StructureRefs++
	var b bytes.Buffer
	b.WriteString(s.ID + "\x00")
	nodeKey(&b, s.Nodes)
	key := b.String()
	if id, ok := e.structIDs[key]; ok {
		return id
	}
	e.str(s.ID)
	e.nodeStrings(s.Nodes)
	id := len(e.structures)
	e.structIDs[key] = id
	e.structures = append(e.structures, s)
	return id
}

func (e *encoder) appendStr(b []byte, s string) []byte {
	return binary.AppendUvarint(b, uint64(e.strings[s]))
}

func (e *encoder) appendField(b []byte, f Field) []byte {
	b = e.appendStr(b, f.Name)
	b = e.appendStr(b, f.Type)
	b = binary.AppendVarint(b, int64(f.Min))
	b = binary.AppendVarint(b, int64(f.Max))
	b = binary.AppendVarint(b, int64(f.Len))
	return binary.AppendVarint(b, int64(f.Table))
}

func (e *encoder) appendNodes(b []byte, ns []Node) []byte {
	b = binary.AppendUvarint(b, uint64(len(ns)))
	for _, n := range ns {
		b = e.appendStr(b, n.Name)
		var flags uint64
		if n.Group {
			flags |= FlagGroup
		}
		if n.Choice {
			flags |= FlagChoice
		}
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendVarint(b, int64(n.Min))
		b = binary.AppendVarint(b, int64(n.Max))
		if n.Group {
			b = e.appendNodes(b, n.Children)
		}
	}
	return b
}

func appendRefs(b []byte, refs []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(refs)))
	for _, r := range refs {
		b = binary.AppendUvarint(b, uint64(r))
	}
	return b
}
