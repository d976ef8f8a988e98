package canonical

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestParsedRecordSize measures the parsed record of the 2 KB ORU^R01 the
// parser benchmarks use, encoded with the schema before parsed.segments
// was removed (testdata/released/parsed.avsc in /schemas, identical to
// git show 44b8c67^:schemas/parsed.avsc) and with the current one, and
// checks that the record now holds the message once. The figures are in
// docs/benchmarks.md ("Parse once"); run with -v to print them.
func TestParsedRecordSize(t *testing.T) {
	oru, err := os.ReadFile(filepath.Join("..", "hl7v2", "testdata", "oru_r01_2k.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	// The large-oru-pdf load scenario's shape: the same report with a
	// 200 KB PDF in base64 in an OBX-5 of type ED.
	pdf := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("%PDF-1.4 hl7bus "), 200_000/16))
	withPDF := append(bytes.TrimRight(bytes.Clone(oru), "\r\n"), []byte("\rOBX|10|ED|PDF^Report^L||^AP^PDF^Base64^"+pdf+"||||||F\r")...)
	for _, tt := range []struct {
		name string
		data []byte
	}{{"2 KB ORU^R01", oru}, {"ORU^R01 with a 200 KB PDF", withPDF}} {
		t.Run(tt.name, func(t *testing.T) { measureParsed(t, tt.name, tt.data) })
	}
}

func measureParsed(t *testing.T, name string, data []byte) {
	m, err := hl7v2.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	// The record as parse builds it: header, delimiters, the standard's
	// validation report, the payload.
	report := hl7v2.NewValidator(nil).Validate(m)
	p := &Parsed{MessageID: "01JEXAMPLE0000000000000000", Interface: "lab", ReceivedAt: time.Unix(1764633600, 0),
		OrderingKey: "NATLAB|123456^GENHOSP", Header: HeaderOf(m), Delimiters: m.Delimiters().String(), Payload: data,
		Validation: Validation{Version: report.Version, Structure: report.Structure, Valid: report.Valid()}}
	for _, is := range report.Issues {
		p.Validation.Issues = append(p.Validation.Issues, Issue{Severity: string(is.Severity), Code: int(is.Code),
			Location: is.Location.String(), Rule: is.Rule, Text: is.Text})
	}

	now := encodeWith(t, mustSchema(t, schemas.Parsed), p.toNative())

	// Before: the same record plus the segment tree parse wrote then
	// (every segment's fields in wire form, services/parse at 44b8c67^).
	old, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", "released", "parsed.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	native := p.toNative()
	var segs []any
	for _, seg := range m.Segments() {
		fields := make([]any, seg.NumFields())
		for i := range fields {
			fields[i] = string(seg.Field(i + 1).Raw())
		}
		segs = append(segs, map[string]any{"name": seg.Name(), "fields": fields})
	}
	native["segments"] = segs
	before := encodeWith(t, string(old), native)

	t.Logf("%s (%d bytes, %d segments): parsed record %d bytes before (with segments), %d bytes now (%.0f%%); Avro body, the wire format adds 5",
		name, len(data), len(segs), before, now, 100*float64(now)/float64(before))
	if now >= before || now > len(data)+512 || before < 2*len(data)-256 {
		t.Errorf("parsed record %d bytes now, %d before, for a %d-byte message: want about the message once now, twice before",
			now, before, len(data))
	}
}

func mustSchema(t *testing.T, name string) string {
	t.Helper()
	s, err := schemas.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encodeWith(t *testing.T, schema string, native map[string]any) int {
	t.Helper()
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}
