package canonical

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hl7bus/hl7bus/schemas"
)

// wire writes and reads the Confluent header (magic byte 0, big-endian
// schema ID) in front of the Avro body.
var wire sr.ConfluentHeader

// Serde encodes records in the Confluent wire format and decodes them back,
// registering schemas under <topic>-value and fetching unknown writer
// schemas by ID. It is safe for concurrent use.
type Serde struct {
	client *sr.Client

	mu sync.RWMutex
	// writers maps a schema name to the ID and codec records of that kind
	// are written with.
	writers map[string]writer
	// readers maps a schema ID to its codec and record kind.
	readers map[int]reader
}

type writer struct {
	id    int
	codec *goavro.Codec
}

type reader struct {
	name  string
	codec *goavro.Codec
}

// NewSerde returns a Serde using the schema registry client c.
func NewSerde(c *sr.Client) *Serde {
	return &Serde{client: c, writers: map[string]writer{}, readers: map[int]reader{}}
}

// Register registers schema name under subject topic+"-value" with
// compatibility BACKWARD, and makes it the schema records of that kind are
// written with. Registering the same schema again returns the same ID.
func (s *Serde) Register(ctx context.Context, topic, name string) (int, error) {
	text, err := schemas.Get(name)
	if err != nil {
		return 0, fmt.Errorf("registering %s: %w: %w", name, ErrNoSuchSchema, err)
	}
	subject := topic + "-value"
	ss, err := s.client.CreateSchema(ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("registering %s: %w", subject, err)
	}
	if err := s.backward(ctx, subject); err != nil {
		return 0, err
	}
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return 0, fmt.Errorf("compiling schema %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writers[name] = writer{id: ss.ID, codec: codec}
	s.readers[ss.ID] = reader{name: name, codec: codec}
	return ss.ID, nil
}

// backward sets subject's compatibility to BACKWARD. Instances of a stage
// start together and register the same subjects: a registry that refuses
// a concurrent set (Apicurio answers 409 "A rule named 'COMPATIBILITY'
// already exists" to the loser) has the level in force already, so the
// refusal is checked against what the registry now says, not taken as a
// failure to start.
func (s *Serde) backward(ctx context.Context, subject string) error {
	res := s.client.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject)
	if len(res) == 0 || res[0].Err == nil {
		return nil
	}
	setErr := res[0].Err
	if got := s.client.Compatibility(ctx, subject); len(got) > 0 && got[0].Err == nil && got[0].Level == sr.CompatBackward {
		return nil
	}
	return fmt.Errorf("setting BACKWARD compatibility on %s: %w", subject, setErr)
}

// Encode appends nothing and returns rec in the Confluent wire format.
func (s *Serde) Encode(rec Record) ([]byte, error) {
	s.mu.RLock()
	w, ok := s.writers[rec.Schema()]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("encoding %s: %w", rec.Schema(), ErrSchemaNotRegistered)
	}
	buf, err := wire.AppendEncode(make([]byte, 0, 256), w.id, nil)
	if err != nil {
		return nil, fmt.Errorf("encoding %s header: %w", rec.Schema(), err)
	}
	out, err := w.codec.BinaryFromNative(buf, rec.toNative())
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", rec.Schema(), err)
	}
	return out, nil
}

// Decode returns the record b holds, fetching its writer schema from the
// registry when this Serde has not seen its ID.
func (s *Serde) Decode(ctx context.Context, b []byte) (Record, error) {
	name, native, err := s.decode(ctx, b)
	if err != nil {
		return nil, err
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding %s: not a record", name)
	}
	return fromNative[name](m), nil
}

// DecodeNative returns the record b holds as goavro's native form, for tools
// that print records without knowing their kind.
func (s *Serde) DecodeNative(ctx context.Context, b []byte) (any, error) {
	_, native, err := s.decode(ctx, b)
	return native, err
}

// decode returns the kind of record b holds and its native form.
func (s *Serde) decode(ctx context.Context, b []byte) (string, any, error) {
	id, body, err := wire.DecodeID(b)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrWireFormat, err)
	}
	r, err := s.reader(ctx, id)
	if err != nil {
		return "", nil, err
	}
	native, rest, err := r.codec.NativeFromBinary(body)
	if err != nil {
		return "", nil, fmt.Errorf("decoding %s (schema %d): %w", r.name, id, err)
	}
	if len(rest) != 0 {
		return "", nil, fmt.Errorf("decoding %s (schema %d): %d trailing bytes", r.name, id, len(rest))
	}
	return r.name, native, nil
}

func (s *Serde) reader(ctx context.Context, id int) (reader, error) {
	s.mu.RLock()
	r, ok := s.readers[id]
	s.mu.RUnlock()
	if ok {
		return r, nil
	}
	sch, err := s.client.SchemaByID(ctx, id)
	if err != nil {
		return reader{}, fmt.Errorf("fetching schema %d: %w: %w", id, ErrUnknownSchemaID, err)
	}
	codec, err := goavro.NewCodec(sch.Schema)
	if err != nil {
		return reader{}, fmt.Errorf("compiling schema %d: %w", id, err)
	}
	name, err := kindOf(codec.Schema())
	if err != nil {
		return reader{}, fmt.Errorf("schema %d: %w", id, err)
	}
	r = reader{name: name, codec: codec}
	s.mu.Lock()
	s.readers[id] = r
	s.mu.Unlock()
	return r, nil
}

// kindOf maps a writer schema's record name to our schema names, so records
// written by an older version of a schema still decode.
func kindOf(schema string) (string, error) {
	var top struct{ Name, Namespace string }
	if err := json.Unmarshal([]byte(schema), &top); err != nil {
		return "", fmt.Errorf("reading schema name: %w", err)
	}
	full := top.Name
	if top.Namespace != "" && !strings.Contains(full, ".") {
		full = top.Namespace + "." + full
	}
	names := map[string]string{
		"org.hl7bus.v1.Raw": schemas.Raw, "org.hl7bus.v1.Parsed": schemas.Parsed,
		"org.hl7bus.v1.Transformed": schemas.Transformed, "org.hl7bus.v1.Out": schemas.Out,
		"org.hl7bus.v1.DeadLetter": schemas.DeadLetter, "org.hl7bus.v1.Delivery": schemas.Delivery,
		"org.hl7bus.v1.Decision": schemas.Decisions, "org.hl7bus.v1.AuditEvent": schemas.Audit,
		"org.hl7bus.v1.ControlState": schemas.Control, "org.hl7bus.v1.ReplayRecord": schemas.Replay,
	}
	if name, ok := names[full]; ok {
		return name, nil
	}
	return "", fmt.Errorf("%q is not an hl7bus record schema", full)
}
