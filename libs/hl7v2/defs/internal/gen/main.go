// Command gen generates the HL7 v2 definitions of package defs from the
// machine-readable sources named in ../../README.md: the hl7apy wheel from
// PyPI (structures, groups, segments, fields, data types for 2.1-2.8.2), the
// hl7-dictionary npm package (field and component lengths, descriptions, and
// a cross-check for 2.1-2.7.1) and the hl7.terminology.r4 npm package (HL7
// tables and the trigger event to structure map of table 0354).
//
// Usage: go run ./hl7v2/defs/internal/gen -hl7apy WHL -dictionary TGZ -terminology TGZ -out DIR
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs/internal/pack"
)

func main() {
	hl7apy := flag.String("hl7apy", "", "path to the hl7apy wheel (.whl)")
	dict := flag.String("dictionary", "", "path to the hl7-dictionary npm tarball (.tgz)")
	term := flag.String("terminology", "", "path to the hl7.terminology.r4 npm tarball (.tgz)")
	out := flag.String("out", ".", "directory to write the generated files to")
	flag.Parse()
	if *hl7apy == "" || *dict == "" || *term == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*hl7apy, *dict, *term, *out); err != nil {
		log.Fatal(err)
	}
}

// The generator builds the types of internal/pack, which writes the data
// file; it does not import package defs, which embeds that file, so a
// missing or broken file never stops its own regeneration.
type (
	field     = pack.Field
	segment   = pack.Segment
	dataType  = pack.DataType
	node      = pack.Node
	structure = pack.Structure
	version   = pack.Version
	table     = pack.Table
)

type crossCheck struct {
	Version                            string
	Segments, SegmentsSameFields       int
	Fields, FieldsSameType             int
	Events, EventsSameStructure        int
	DataTypes, DataTypesSameComponents int
}

func run(whlPath, dictPath, termPath, outDir string) error {
	apy, err := readZip(whlPath)
	if err != nil {
		return err
	}
	dict, err := readTgz(dictPath)
	if err != nil {
		return err
	}
	terms, err := readTgz(termPath)
	if err != nil {
		return err
	}
	events0354, err := table0354(terms)
	if err != nil {
		return err
	}
	var versions []*version
	var checks []crossCheck
	dirs := map[string]bool{}
	for name := range apy {
		if m := regexp.MustCompile(`^hl7apy/v(2(?:_\d+)+)/segments\.py$`).FindStringSubmatch(name); m != nil {
			dirs[m[1]] = true
		}
	}
	for dir := range dirs {
		v, check, err := buildVersion(apy, dict, dir, events0354)
		if err != nil {
			return fmt.Errorf("version %s: %w", dir, err)
		}
		versions = append(versions, v)
		if check != nil {
			checks = append(checks, *check)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i].ID, versions[j].ID) })
	sort.Slice(checks, func(i, j int) bool { return versionLess(checks[i].Version, checks[j].Version) })

	used := map[int]bool{}
	for _, v := range versions {
		for _, s := range v.Segments {
			for _, f := range s.Fields {
				used[f.Table] = true
			}
		}
		for _, d := range v.DataTypes {
			for _, c := range d.Components {
				used[c.Table] = true
			}
		}
	}
	tables, err := readTables(terms, used)
	if err != nil {
		return err
	}
	vs := make([]pack.Version, len(versions))
	for i, v := range versions {
		vs[i] = *v
	}
	blob, stats, err := pack.Encode(vs, tables)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, dataFile), blob, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "VERSIONS.md"), versionsReport(versions, tables, stats, len(blob)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, "CROSSCHECK.md"), crossCheckReport(checks, versions, tables), 0o644)
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func readZip(path string) (map[string]string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out := map[string]string{}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".py") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out[f.Name] = string(b)
	}
	return out, nil
}

func readTgz(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[h.Name] = b
	}
}

// jsObject extracts the object literal of a `var x = {...}; module.exports`
// file, which is plain JSON in hl7-dictionary.
func jsObject(b []byte, v any) error {
	i, j := bytes.IndexByte(b, '{'), bytes.LastIndexByte(b, '}')
	if i < 0 || j < i {
		return fmt.Errorf("no object literal")
	}
	return json.Unmarshal(b[i:j+1], v)
}

type dictField struct {
	Datatype string `json:"datatype"`
	Desc     string `json:"desc"`
	Opt      int    `json:"opt"`
	Rep      int    `json:"rep"`
	Len      int    `json:"len"`
	Table    int    `json:"table"`
}

// optConditional is hl7-dictionary's optionality code for C.
const optConditional = 3

type dictNode struct {
	Name     string     `json:"name"`
	Min      int        `json:"min"`
	Max      int        `json:"max"`
	Children []dictNode `json:"children"`
}

type dictVersion struct {
	segments map[string]struct {
		Desc   string      `json:"desc"`
		Fields []dictField `json:"fields"`
	}
	types map[string]struct {
		Subfields []dictField `json:"subfields"`
	}
	messages map[string]struct {
		Segments struct {
			Segments []dictNode `json:"segments"`
		} `json:"segments"`
	}
}

func loadDict(files map[string][]byte, id string) (*dictVersion, error) {
	seg, ok := files["package/lib/"+id+"/segments.js"]
	if !ok {
		return nil, nil
	}
	d := &dictVersion{}
	if err := jsObject(seg, &d.segments); err != nil {
		return nil, fmt.Errorf("hl7-dictionary %s segments: %w", id, err)
	}
	if err := jsObject(files["package/lib/"+id+"/fields.js"], &d.types); err != nil {
		return nil, fmt.Errorf("hl7-dictionary %s fields: %w", id, err)
	}
	if err := jsObject(files["package/lib/"+id+"/messages.js"], &d.messages); err != nil {
		return nil, fmt.Errorf("hl7-dictionary %s messages: %w", id, err)
	}
	return d, nil
}

func buildVersion(apy map[string]string, dictFiles map[string][]byte, dir string, ev0354 map[string][]string) (*version, *crossCheck, error) {
	id := strings.ReplaceAll(dir, "_", ".")
	mods := map[string]any{}
	for _, f := range []string{"messages", "groups", "segments", "fields", "datatypes"} {
		src, ok := apy["hl7apy/v"+dir+"/"+f+".py"]
		if !ok {
			return nil, nil, fmt.Errorf("hl7apy has no %s.py", f)
		}
		m, err := parseModule(src)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.py: %w", f, err)
		}
		for k, v := range m {
			mods[k] = v
		}
	}
	dict, err := loadDict(dictFiles, id)
	if err != nil {
		return nil, nil, err
	}
	// optDict supplies optionality C where hl7apy has none: the version's
	// own dictionary, or the newest one (2.7.1) for the versions after it.
	optDict := dict
	if optDict == nil && versionLess("2.7.1", id) {
		if optDict, err = loadDict(dictFiles, "2.7.1"); err != nil {
			return nil, nil, err
		}
	}
	get := func(table string) map[string]any {
		m, _ := mods[table].(map[string]any)
		return m
	}
	SEG, FLD, DT, DTS, MSG, GRP := get("SEGMENTS"), get("FIELDS"), get("DATATYPES"), get("DATATYPES_STRUCTS"), get("MESSAGES"), get("GROUPS")
	if SEG == nil || FLD == nil || DTS == nil || MSG == nil {
		return nil, nil, fmt.Errorf("hl7apy module tables missing")
	}
	v := &version{ID: id}
	var check *crossCheck
	if dict != nil {
		check = &crossCheck{Version: id}
	}

	// Segments and their fields.
	for _, segID := range sortedKeys(SEG) {
		entry := seq(SEG[segID])
		if len(entry) == 1 {
			// Withdrawn segments (QRD, QRF in 2.7+) keep their name and
			// lose their fields.
			entry = append(entry, []any{})
		}
		if len(entry) < 2 {
			return nil, nil, fmt.Errorf("segment %s: unexpected shape", segID)
		}
		if str(entry[0]) != "sequence" {
			// ANYHL7SEGMENT (2.7+) is a choice of every segment, not a
			// segment; structures that name it are matched as a wildcard.
			continue
		}
		s := segment{ID: segID}
		var ds, opts []dictField
		if dict != nil {
			if d, ok := dict.segments[segID]; ok {
				s.Name, ds = d.Desc, d.Fields
				check.Segments++
			}
		}
		if optDict != nil {
			opts = optDict.segments[segID].Fields
		}
		children := seq(entry[1])
		for _, c := range children {
			cs := seq(c)
			ref, _ := cs[1].(pyRef)
			fdef := seq(FLD[ref.Key])
			if len(fdef) < 6 {
				return nil, nil, fmt.Errorf("field %s: unexpected shape", ref.Key)
			}
			min, max := card(cs[2])
			f := field{Name: titleCase(str(fdef[3])), Type: str(fdef[2]), Min: min, Max: max, Table: tableNum(fdef[4])}
			// Positions come from the element name (EVN_2), not the list
			// index: from 2.8 hl7apy leaves withdrawn fields out instead of
			// keeping their positions.
			i := position(str(cs[0])) - 1
			if i < len(s.Fields) {
				return nil, nil, fmt.Errorf("segment %s: field %s out of order", segID, str(cs[0]))
			}
			for len(s.Fields) < i {
				s.Fields = append(s.Fields, withdrawn)
			}
			if i < len(ds) {
				check.Fields++
				if ds[i].Datatype == f.Type {
					check.FieldsSameType++
				}
				f.Len = ds[i].Len
				if ds[i].Desc != "" {
					f.Name = ds[i].Desc
				}
			}
			// hl7apy marks several conditional fields (OBX-4 from 2.7) as
			// required; a condition cannot be checked without its rule, so a
			// field hl7-dictionary calls conditional is not required.
			if i < len(opts) && opts[i].Opt == optConditional && opts[i].Datatype == f.Type {
				f.Min = 0
			}
			if max == 0 {
				f = withdrawn
			}
			s.Fields = append(s.Fields, f)
		}
		if ds != nil && len(ds) == len(s.Fields) {
			check.SegmentsSameFields++
		}
		v.Segments = append(v.Segments, s)
	}

	// Data types: composites from DATATYPES_STRUCTS, primitives are every
	// other type a field or component names.
	known := map[string]bool{}
	for _, dtID := range sortedKeys(DTS) {
		d := dataType{ID: dtID}
		var dd []dictField
		if dict != nil {
			if x, ok := dict.types[dtID]; ok {
				dd = x.Subfields
				check.DataTypes++
			}
		}
		comps := seq(DTS[dtID])
		for _, c := range comps {
			cs := seq(c)
			ref, _ := cs[1].(pyRef)
			cdef := seq(DT[ref.Key])
			if len(cdef) < 6 {
				return nil, nil, fmt.Errorf("component %s: unexpected shape", ref.Key)
			}
			min, max := card(cs[2])
			f := field{Name: titleCase(str(cdef[3])), Type: str(cdef[2]), Min: min, Max: max, Table: tableNum(cdef[4])}
			i := position(str(cs[0])) - 1
			if i < len(d.Components) {
				return nil, nil, fmt.Errorf("data type %s: component %s out of order", dtID, str(cs[0]))
			}
			for len(d.Components) < i {
				d.Components = append(d.Components, withdrawn)
			}
			if i < len(dd) {
				f.Len = dd[i].Len
				if dd[i].Desc != "" {
					f.Name = dd[i].Desc
				}
			}
			if max == 0 {
				f = withdrawn
			}
			d.Components = append(d.Components, f)
		}
		if dd != nil && len(dd) == len(d.Components) {
			check.DataTypesSameComponents++
		}
		known[dtID] = true
		v.DataTypes = append(v.DataTypes, d)
	}
	prim := map[string]bool{}
	for _, s := range v.Segments {
		for _, f := range s.Fields {
			prim[f.Type] = true
		}
	}
	for _, d := range v.DataTypes {
		for _, c := range d.Components {
			prim[c.Type] = true
		}
	}
	for _, p := range sortedKeys(prim) {
		if !known[p] && p != "" {
			v.DataTypes = append(v.DataTypes, dataType{ID: p})
		}
	}
	sort.Slice(v.DataTypes, func(i, j int) bool { return v.DataTypes[i].ID < v.DataTypes[j].ID })

	// Message structures.
	var walk func(children []any) ([]node, error)
	walk = func(children []any) ([]node, error) {
		var out []node
		for _, c := range children {
			cs := seq(c)
			if len(cs) < 4 {
				return nil, fmt.Errorf("structure element has unexpected shape")
			}
			min, max := card(cs[2])
			n := node{Name: str(cs[0]), Min: min, Max: max}
			if str(cs[3]) == "GRP" {
				key := n.Name
				if ref, ok := cs[1].(pyRef); ok {
					key = ref.Key
				}
				// Nested groups are sometimes written as None and linked
				// by name after hl7apy loads; resolve them the same way.
				g := seq(GRP[key])
				if len(g) < 2 {
					return nil, fmt.Errorf("group %s: unexpected shape", key)
				}
				n.Group, n.Choice = true, str(g[0]) == "choice"
				kids, err := walk(seq(g[1]))
				if err != nil {
					return nil, err
				}
				n.Children = kids
			}
			out = append(out, n)
		}
		return out, nil
	}
	structs := map[string]bool{}
	for _, msgID := range sortedKeys(MSG) {
		entry := seq(MSG[msgID])
		if len(entry) < 2 {
			return nil, nil, fmt.Errorf("message %s: unexpected shape", msgID)
		}
		nodes, err := walk(seq(entry[1]))
		if err != nil {
			return nil, nil, fmt.Errorf("message %s: %w", msgID, err)
		}
		v.Structures = append(v.Structures, structure{ID: msgID, Nodes: nodes})
		structs[msgID] = true
	}

	// Trigger events: a structure named CODE_EVENT serves that event
	// itself (the only form before v2.3.1); table 0354 lists the other
	// events each structure serves.
	events := map[string]string{}
	isEvent := regexp.MustCompile(`^([A-Z0-9]{3})_([A-Z0-9]{3})$`)
	for id := range structs {
		if m := isEvent.FindStringSubmatch(id); m != nil {
			events[m[1]+"^"+m[2]] = id
		}
	}
	for st, evs := range ev0354 {
		if !structs[st] {
			continue
		}
		code := st[:3]
		for _, e := range evs {
			if _, ok := events[code+"^"+e]; !ok {
				events[code+"^"+e] = st
			}
		}
	}
	for _, k := range sortedKeys(events) {
		v.Events = append(v.Events, [2]string{k, events[k]})
	}

	// Cross-check the event map against hl7-dictionary, which lists each
	// CODE_EVENT with its own copy of the structure.
	if dict != nil {
		byID := map[string]structure{}
		for _, s := range v.Structures {
			byID[s.ID] = s
		}
		for key, m := range dict.messages {
			mm := isEvent.FindStringSubmatch(key)
			if mm == nil {
				continue
			}
			st, ok := events[mm[1]+"^"+mm[2]]
			if !ok {
				continue
			}
			check.Events++
			if flatNodes(byID[st].Nodes) == flatDict(m.Segments.Segments) {
				check.EventsSameStructure++
			}
		}
	}
	return v, check, nil
}

// flatNodes and flatDict render a structure's segment order, cardinality
// left out (the sources disagree on how to spell unbounded), so the two
// sources can be compared.
func flatNodes(ns []node) string {
	var b strings.Builder
	for _, n := range ns {
		if n.Group {
			b.WriteString("[" + flatNodes(n.Children) + "]")
		} else {
			b.WriteString(n.Name + " ")
		}
	}
	return b.String()
}

func flatDict(ns []dictNode) string {
	var b strings.Builder
	for _, n := range ns {
		if len(n.Children) > 0 {
			b.WriteString("[" + flatDict(n.Children) + "]")
		} else {
			b.WriteString(n.Name + " ")
		}
	}
	return b.String()
}

// withdrawn stands at the position of a field or component the version
// withdrew: senders still fill it, and later positions must not shift.
var withdrawn = field{Name: "Withdrawn"}

// position reads the number at the end of an element name (PID_28 -> 28).
func position(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndexByte(name, '_')+1:])
	return n
}

func seq(v any) []any {
	s, _ := v.([]any)
	return s
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// card reads a (min, max) tuple; hl7apy writes unbounded as -1.
func card(v any) (int, int) {
	s := seq(v)
	if len(s) != 2 {
		return 0, 1
	}
	min, _ := s[0].(int)
	max, _ := s[1].(int)
	if max < 0 {
		max = -1
	}
	return min, max
}

func tableNum(v any) int {
	s := str(v)
	if !strings.HasPrefix(s, "HL7") {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimLeft(s[3:], "0"))
	return n
}

// titleCase turns hl7apy's SET_ID_PID into "Set Id Pid" for the elements
// hl7-dictionary has no description of.
func titleCase(s string) string {
	words := strings.Split(strings.ToLower(s), "_")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type codeSystem struct {
	Title   string `json:"title"`
	Concept []struct {
		Code       string `json:"code"`
		Definition string `json:"definition"`
		Display    string `json:"display"`
	} `json:"concept"`
}

// table0354 reads the structure -> events map from HL7 table 0354, whose
// definitions list the events a structure serves ("A01, A04, A08, A13").
func table0354(files map[string][]byte) (map[string][]string, error) {
	b, ok := files["package/CodeSystem-v2-0354.json"]
	if !ok {
		return nil, fmt.Errorf("hl7.terminology.r4 has no table 0354")
	}
	var cs codeSystem
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("table 0354: %w", err)
	}
	out := map[string][]string{}
	ev := regexp.MustCompile(`\b[A-Z0-9]{3}\b`)
	for _, c := range cs.Concept {
		text := c.Definition
		if text == "" {
			text = c.Display
		}
		out[c.Code] = ev.FindAllString(text, -1)
	}
	return out, nil
}

func readTables(files map[string][]byte, used map[int]bool) ([]table, error) {
	re := regexp.MustCompile(`^package/CodeSystem-v2-(\d{4})\.json$`)
	var out []table
	for name, b := range files {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if !used[n] {
			continue
		}
		var cs codeSystem
		if err := json.Unmarshal(b, &cs); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		t := table{ID: n, Name: cs.Title}
		seen := map[string]bool{}
		for _, c := range cs.Concept {
			if !seen[c.Code] {
				seen[c.Code] = true
				t.Codes = append(t.Codes, c.Code)
			}
		}
		sort.Strings(t.Codes)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// dataFile is the file package defs embeds.
const dataFile = "defs.bin.gz"

func crossCheckReport(cs []crossCheck, vs []*version, ts []table) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated definitions: counts and cross-check\n\n")
	b.WriteString("Generated by `internal/gen`; do not edit. See README.md for the sources.\n\n")
	b.WriteString("| version | segments | data types | structures | events |\n|---|---|---|---|---|\n")
	for _, v := range vs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", v.ID, len(v.Segments), len(v.DataTypes), len(v.Structures), len(v.Events))
	}
	codes := 0
	for _, t := range ts {
		codes += len(t.Codes)
	}
	fmt.Fprintf(&b, "\nHL7 tables: %d tables referenced by some field or component, %d codes.\n\n", len(ts), codes)
	b.WriteString("## hl7apy against hl7-dictionary\n\n")
	b.WriteString("| version | segments in both | same field count | fields compared | same data type | events compared | same structure | data types in both | same component count |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d |\n", c.Version, c.Segments, c.SegmentsSameFields,
			c.Fields, c.FieldsSameType, c.Events, c.EventsSameStructure, c.DataTypes, c.DataTypesSameComponents)
	}
	return b.Bytes()
}
