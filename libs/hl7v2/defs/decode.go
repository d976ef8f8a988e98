package defs

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
)

// The data file format is documented in internal/pack, which writes it.
const (
	magic       = "HL7DEFS1"
	flagGroup   = 1
	flagChoice  = 2
	maxNodeDeep = 32 // deeper than any structure HL7 defines
	// maxPayload bounds the buffer the size in the gzip trailer asks for;
	// the payload is under 1 MB.
	maxPayload = 64 << 20
)

// catalog is the decompressed data file: one string holding the payload,
// and per item kind the offset of each item in it. It has no pointers but
// the payload, so keeping it costs the garbage collector nothing to scan;
// Go values are made only for the items a looked-up version references,
// each once, shared by every version that references it.
type catalog struct {
	payload string
	// strStart[i]..strStart[i+1] is string i within payload.
	strStart                                []uint32
	fields, segments, dataTypes, structures []uint32
	tables                                  uint32
	versions                                []uint32
	versionIDs                              []string

	mu          sync.Mutex
	segmentVals []*Segment
	dataTypeVal []*DataType
	structVals  []*Structure
}

// decompress reads the gzip data file into its payload. The gzip trailer
// holds the payload's size, so the payload is read into one buffer of that
// size and becomes the string without a copy.
func decompress(gz string) (string, error) {
	zr, err := gzip.NewReader(strings.NewReader(gz))
	if err != nil {
		return "", fmt.Errorf("%w: gzip header: %w", ErrCorrupt, err)
	}
	var b strings.Builder
	if len(gz) >= 4 {
		if size := binary.LittleEndian.Uint32([]byte(gz[len(gz)-4:])); size <= maxPayload {
			b.Grow(int(size))
		}
	}
	if _, err := io.Copy(&b, zr); err != nil {
		return "", fmt.Errorf("%w: gzip stream: %w", ErrCorrupt, err)
	}
	return b.String(), nil
}

// openCatalog decompresses the data file and indexes its items; it reads
// every item once to find where the next one starts, but builds none.
func openCatalog(gz string) (*catalog, error) {
	p, err := decompress(gz)
	if err != nil {
		return nil, err
	}
	if len(p) < len(magic) || p[:len(magic)] != magic {
		return nil, fmt.Errorf("%w: not an %s payload", ErrCorrupt, magic)
	}
	c := &catalog{payload: p}
	r := &reader{c: c, off: len(magic)}

	n := r.count()
	c.strStart = make([]uint32, n+1)
	total := 0
	for i := 0; i < n && r.err == nil; i++ {
		c.strStart[i] = uint32(total)
		total += r.count()
	}
	base := r.off
	if r.err == nil && total > len(p)-base {
		r.fail("string bytes")
	}
	for i := range c.strStart {
		c.strStart[i] += uint32(base)
	}
	c.strStart[n] = uint32(base + total)
	r.off = base + total

	c.fields = r.index(func() {
		r.str()
		r.str()
		r.int()
		r.int()
		r.int()
		r.int()
	})
	c.segments = r.index(func() { r.str(); r.str(); r.skipRefs() })
	c.dataTypes = r.index(func() { r.str(); r.skipRefs() })
	c.structures = r.index(func() { r.str(); r.skipNodes(0) })
	c.tables = uint32(r.off)
	r.index(func() {
		r.int()
		r.str()
		for k := r.count(); k > 0 && r.err == nil; k-- {
			r.str()
		}
	})
	c.versions = r.index(func() {
		r.str()
		r.skipRefs()
		r.skipRefs()
		r.skipRefs()
		for k := r.count(); k > 0 && r.err == nil; k-- {
			r.str()
			r.str()
		}
	})
	if r.err == nil && r.off != len(p) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	for _, off := range c.versions {
		vr := &reader{c: c, off: int(off)}
		c.versionIDs = append(c.versionIDs, vr.str())
	}
	c.segmentVals = make([]*Segment, len(c.segments))
	c.dataTypeVal = make([]*DataType, len(c.dataTypes))
	c.structVals = make([]*Structure, len(c.structures))
	return c, nil
}

// version builds version i from its references.
func (c *catalog) version(i int) (*Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &reader{c: c, off: int(c.versions[i])}
	id := r.str()
	segs := r.refs(len(c.segments))
	dts := r.refs(len(c.dataTypes))
	structs := r.refs(len(c.structures))
	nEvents := r.count()
	if r.err != nil {
		return nil, r.err
	}
	v := &Version{
		ID:         id,
		segments:   make(map[string]*Segment, len(segs)),
		dataTypes:  make(map[string]*DataType, len(dts)),
		structures: make(map[string]*Structure, len(structs)),
		events:     make(map[string]string, nEvents),
		names:      make(map[*Structure]map[string]bool, len(structs)),
	}
	for k := 0; k < nEvents && r.err == nil; k++ {
		ev := r.str()
		v.events[ev] = r.str()
	}
	if r.err != nil {
		return nil, r.err
	}
	sl := c.slabsFor(segs, dts)
	for _, ref := range segs {
		s, err := c.segment(ref, sl)
		if err != nil {
			return nil, err
		}
		v.segments[s.ID] = s
	}
	for _, ref := range dts {
		d, err := c.dataType(ref, sl)
		if err != nil {
			return nil, err
		}
		v.dataTypes[d.ID] = d
	}
	for _, ref := range structs {
		s, err := c.structure(ref)
		if err != nil {
			return nil, err
		}
		v.structures[s.ID] = s
		v.names[s] = map[string]bool{}
		collectNames(s.Nodes, v.names[s])
	}
	return v, nil
}

// slabs hold the values one version decodes, allocated together: the
// validator reads a segment's fields and then their data types for every
// field of a message, and values side by side in memory keep that walk as
// fast as it was over the static Go literals.
type slabs struct {
	segments  []Segment
	dataTypes []DataType
	fields    []Field
}

// slabsFor sizes the slabs for the items of segs and dts not yet decoded.
func (c *catalog) slabsFor(segs, dts []int) *slabs {
	var nSeg, nDT, nField int
	for _, ref := range segs {
		if c.segmentVals[ref] == nil {
			nSeg++
			nField += c.countAfter(c.segments[ref], 2)
		}
	}
	for _, ref := range dts {
		if c.dataTypeVal[ref] == nil {
			nDT++
			nField += c.countAfter(c.dataTypes[ref], 1)
		}
	}
	return &slabs{
		segments:  make([]Segment, 0, nSeg),
		dataTypes: make([]DataType, 0, nDT),
		fields:    make([]Field, 0, nField),
	}
}

// countAfter reads the count that follows strs string references at off;
// 0 if it does not read (decoding the item then reports the error).
func (c *catalog) countAfter(off uint32, strs int) int {
	r := &reader{c: c, off: int(off)}
	for ; strs > 0; strs-- {
		r.str()
	}
	return r.count()
}

// newSegment returns a place for a segment: in the slab while it has
// room, which it always has unless a version references a segment twice.
func (sl *slabs) newSegment() *Segment {
	if len(sl.segments) == cap(sl.segments) {
		return &Segment{}
	}
	sl.segments = sl.segments[:len(sl.segments)+1]
	return &sl.segments[len(sl.segments)-1]
}

func (sl *slabs) newDataType() *DataType {
	if len(sl.dataTypes) == cap(sl.dataTypes) {
		return &DataType{}
	}
	sl.dataTypes = sl.dataTypes[:len(sl.dataTypes)+1]
	return &sl.dataTypes[len(sl.dataTypes)-1]
}

// newFields returns n fields, capacity capped so that no append by a
// caller can reach into the next item's fields.
func (sl *slabs) newFields(n int) []Field {
	if cap(sl.fields)-len(sl.fields) < n {
		return make([]Field, n)
	}
	start := len(sl.fields)
	sl.fields = sl.fields[:start+n]
	return sl.fields[start : start+n : start+n]
}

func (c *catalog) segment(i int, sl *slabs) (*Segment, error) {
	if s := c.segmentVals[i]; s != nil {
		return s, nil
	}
	r := &reader{c: c, off: int(c.segments[i])}
	s := sl.newSegment()
	s.ID, s.Name = r.str(), r.str()
	s.Fields = r.fieldList(sl)
	if s.Fields == nil {
		s.Fields = []Field{}
	}
	if r.err != nil {
		return nil, fmt.Errorf("segment %d: %w", i, r.err)
	}
	c.segmentVals[i] = s
	return s, nil
}

func (c *catalog) dataType(i int, sl *slabs) (*DataType, error) {
	if d := c.dataTypeVal[i]; d != nil {
		return d, nil
	}
	r := &reader{c: c, off: int(c.dataTypes[i])}
	d := sl.newDataType()
	d.ID = r.str()
	d.Components = r.fieldList(sl)
	if r.err != nil {
		return nil, fmt.Errorf("data type %d: %w", i, r.err)
	}
	c.dataTypeVal[i] = d
	return d, nil
}

func (c *catalog) structure(i int) (*Structure, error) {
	if s := c.structVals[i]; s != nil {
		return s, nil
	}
	r := &reader{c: c, off: int(c.structures[i])}
	s := &Structure{ID: r.str()}
	s.Nodes = r.nodes(0)
	if r.err != nil {
		return nil, fmt.Errorf("structure %d: %w", i, r.err)
	}
	c.structVals[i] = s
	return s, nil
}

// allTables builds every table; they are not per version.
func (c *catalog) allTables() ([]Table, error) {
	r := &reader{c: c, off: int(c.tables)}
	n := r.count()
	out := make([]Table, 0, n)
	for k := 0; k < n && r.err == nil; k++ {
		t := Table{ID: r.int(), Name: r.str()}
		codes := r.count()
		if r.err == nil {
			t.Codes = make([]string, 0, codes)
		}
		for j := 0; j < codes && r.err == nil; j++ {
			t.Codes = append(t.Codes, r.str())
		}
		out = append(out, t)
	}
	if r.err != nil {
		return nil, fmt.Errorf("tables: %w", r.err)
	}
	return out, nil
}

// reader reads varints from the payload; the first error sticks, and
// every read after it returns zero, so callers check once at the end.
type reader struct {
	c   *catalog
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s at byte %d", ErrCorrupt, what, r.off)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := uvarintString(r.c.payload[r.off:])
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.off += n
	return x
}

// uvarintString is binary.Uvarint over a string, which avoids copying the
// payload into a []byte.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -1
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

func (r *reader) int() int {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return int(x)
}

// count reads a length, bounded by the bytes left: every counted element
// takes at least one byte, so a larger count is corrupt.
func (r *reader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.c.payload)-r.off) {
		r.fail("count")
		return 0
	}
	return int(n)
}

// ref reads an index below n.
func (r *reader) ref(n int) int {
	x := r.uvarint()
	if r.err == nil && x >= uint64(n) {
		r.fail("reference")
		return 0
	}
	return int(x)
}

func (r *reader) str() string {
	i := r.ref(len(r.c.strStart) - 1)
	if r.err != nil {
		return ""
	}
	return r.c.payload[r.c.strStart[i]:r.c.strStart[i+1]]
}

func (r *reader) refs(n int) []int {
	k := r.count()
	out := make([]int, 0, k)
	for ; k > 0 && r.err == nil; k-- {
		out = append(out, r.ref(n))
	}
	return out
}

func (r *reader) skipRefs() {
	for k := r.count(); k > 0 && r.err == nil; k-- {
		r.uvarint()
	}
}

// index records the offset of each of count items, skipping over each.
func (r *reader) index(skip func()) []uint32 {
	n := r.count()
	out := make([]uint32, 0, n)
	for ; n > 0 && r.err == nil; n-- {
		out = append(out, uint32(r.off))
		skip()
	}
	return out
}

func (r *reader) fieldList(sl *slabs) []Field {
	refs := r.refs(len(r.c.fields))
	if len(refs) == 0 || r.err != nil {
		return nil
	}
	out := sl.newFields(len(refs))
	for i, ref := range refs {
		fr := &reader{c: r.c, off: int(r.c.fields[ref])}
		out[i] = Field{Name: fr.str(), Type: fr.str(), Min: fr.int(), Max: fr.int(), Len: fr.int(), Table: fr.int()}
		if fr.err != nil {
			r.err = fr.err
			return nil
		}
	}
	return out
}

func (r *reader) nodes(depth int) []Node {
	n := r.count()
	if n == 0 || r.err != nil {
		return nil
	}
	if depth > maxNodeDeep {
		r.fail("nesting")
		return nil
	}
	out := make([]Node, 0, n)
	for ; n > 0 && r.err == nil; n-- {
		nd := Node{Name: r.str()}
		flags := r.uvarint()
		nd.Group, nd.Choice = flags&flagGroup != 0, flags&flagChoice != 0
		nd.Min, nd.Max = r.int(), r.int()
		if nd.Group {
			nd.Children = r.nodes(depth + 1)
		}
		out = append(out, nd)
	}
	return out
}

func (r *reader) skipNodes(depth int) {
	if depth > maxNodeDeep {
		r.fail("nesting")
		return
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		r.str()
		flags := r.uvarint()
		r.int()
		r.int()
		if flags&flagGroup != 0 {
			r.skipNodes(depth + 1)
		}
	}
}
