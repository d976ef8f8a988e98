package canonical

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/hl7bus/hl7bus/schemas"
)

var update = flag.Bool("update", false, "rewrite the encoded samples in schemas/testdata/samples")

// samplesDir holds one encoded record (Avro body, no wire header) per
// schema: <name>.avro written by the current schema, released/<name>.avro
// by the released one (schemas/testdata/released). They are what a topic
// holds after an upgrade: each must keep decoding, by its writer schema
// as Serde does, to the same record.
const samplesDir = "../../schemas/testdata/samples"

// releasedSamples use only fields the released schemas have.
func releasedSamples() map[string]Record {
	h := Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageCode: "ORU", TriggerEvent: "R01",
		ControlID: "MSG1", Version: "2.5.1", Charset: "UTF-8"}
	return map[string]Record{
		schemas.Raw: &Raw{MessageID: "01HZ", Interface: "lab-in", ReceivedAt: at, Protocol: "mllp", Peer: "10.0.0.1:5000",
			OrderingKey: "GENHOSP|123^^^H", Header: h, Payload: []byte("MSH|^~\\&|\r")},
		schemas.Parsed: &Parsed{MessageID: "01HZ", Interface: "lab-in", ReceivedAt: at, OrderingKey: "k", Header: h, Delimiters: `|^~\&`,
			Validation: Validation{Version: "2.5.1", Structure: "ORU_R01", Issues: []Issue{{Severity: "E", Code: 101, Location: "PID[1]-3", Rule: "required", Text: "x"}}},
			Payload:    []byte("MSH|^~\\&|\r")},
		schemas.Transformed: &Transformed{MessageID: "01HZ", Interface: "lab-in", ReceivedAt: at, OrderingKey: "k", Header: h, Message: []byte("m"),
			MessageTime: "2024-03-01T09:15:00Z", MessageTimeOffset: "+01:00",
			Patient: &Patient{Identifiers: []Identifier{{Value: "123", Authority: "H", Type: "MR"}}, FamilyName: "DOE", BirthDate: "1980", Sex: "F"}},
		schemas.Out: &Out{MessageID: "01HZ", Interface: "lab-in", ReceivedAt: at, OrderingKey: "k", ControlID: "MSG1", Destination: "lis",
			Route: "all", ContentType: ContentTypeV2, Payload: []byte("m")},
		schemas.DeadLetter: &DeadLetter{MessageID: "01HZ", ControlID: "MSG1", Stage: "route", ErrorClass: ErrorPermanent, Reason: "no route",
			SourceTopic: "hl7bus.transformed", SourcePartition: 3, SourceOffset: 42, Attempts: 1, FirstFailedAt: at, LastFailedAt: at,
			Key: []byte("k"), Value: []byte{0, 1, 2}, Headers: map[string][]byte{"traceparent": []byte("00-abc")}},
		schemas.Delivery: &Delivery{MessageID: "01HZ", ControlID: "MSG1", Destination: "lis", Attempt: 2, Outcome: OutcomeDelivered,
			AckCode: "AA", LatencyMS: 12.5, At: at},
	}
}

// currentSamples set the fields added since the release too.
func currentSamples() map[string]Record {
	m := map[string]Record{}
	for _, r := range samples() {
		m[r.Schema()] = r // the last of each kind: the one with the newest fields
	}
	return m
}

// releasedExtras are values of released fields the current schemas
// dropped (goavro needs every field without a default).
var releasedExtras = map[string]map[string]any{schemas.Parsed: {"segments": []any{}}}

func TestSamplesDecode(t *testing.T) {
	for _, set := range []struct {
		dir     string
		recs    map[string]Record
		schema  func(name string) (string, error)
		extras  map[string]map[string]any
		release bool
	}{
		{samplesDir, currentSamples(), schemas.Get, nil, false},
		{filepath.Join(samplesDir, "released"), releasedSamples(), func(name string) (string, error) {
			b, err := os.ReadFile(filepath.Join("../../schemas/testdata/released", name+".avsc"))
			return string(b), err
		}, releasedExtras, true},
	} {
		for _, name := range schemas.All {
			want, ok := set.recs[name]
			if !ok {
				if !set.release {
					t.Errorf("no sample of %s", name)
				}
				continue
			}
			text, err := set.schema(name)
			if err != nil {
				t.Fatal(err)
			}
			codec, err := goavro.NewCodec(text)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			path := filepath.Join(set.dir, name+".avro")
			if *update {
				native := want.toNative()
				for k, v := range set.extras[name] {
					native[k] = v
				}
				b, err := codec.BinaryFromNative(nil, native)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if err := os.MkdirAll(set.dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./canonical -run TestSamplesDecode -update writes it)", err)
			}
			native, rest, err := codec.NativeFromBinary(b)
			if err != nil || len(rest) != 0 {
				t.Fatalf("%s: %v (%d bytes left)", path, err, len(rest))
			}
			if got := fromNative[name](native.(map[string]any)); !reflect.DeepEqual(got, want) {
				t.Errorf("%s decodes to\n %+v\nwant %+v", path, got, want)
			}
		}
	}
}
