package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
)

// Reader reads single Kafka records by topic, partition and offset: the
// index points at records, and a message's detail reads them back. It is
// a RecordReader.
type Reader struct {
	kc   kafka.Config
	log  *slog.Logger
	opts []kgo.Opt
	// adm answers where a partition starts and ends, so a read of a
	// deleted or not yet committed offset answers at once instead of
	// waiting for a record that never comes.
	adm *kadm.Client
	cl  *kgo.Client
}

// readTimeout bounds one read when the caller's context does not bound
// it more tightly: a record that is on the topic comes in one fetch.
const readTimeout = 10 * time.Second

// NewRecordReader returns a Reader over the brokers of kc; opts are added
// to every client it builds (tests, instrumentation).
func NewRecordReader(kc kafka.Config, log *slog.Logger, opts ...kgo.Opt) (*Reader, error) {
	cl, err := kafka.NewAdmin(kc, log, opts...)
	if err != nil {
		return nil, fmt.Errorf("record reader: %w", err)
	}
	return &Reader{kc: kc, log: log, opts: opts, adm: kadm.NewClient(cl), cl: cl}, nil
}

// Close closes the Reader's client.
func (rd *Reader) Close() { rd.cl.Close() }

// Read returns the committed record at offset of topic's partition. It
// answers ErrRecordGone when the offset is below the partition's start
// (retention, DeleteRecords) or holds no readable record (compacted
// away, an aborted transaction's record, a transaction marker), and
// ErrNotFound when it is at or past the last committed offset.
func (rd *Reader) Read(ctx context.Context, topic string, partition int32, offset int64) (*kgo.Record, error) {
	if offset < 0 || partition < 0 {
		return nil, fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	if err := rd.bounds(ctx, topic, partition, offset); err != nil {
		return nil, err
	}
	// A consumer of this one partition from this offset, closed after the
	// record: reads are rare (an analyst opening a message), and a
	// client of its own per read keeps concurrent reads apart.
	cl, err := kafka.NewAdmin(rd.kc, rd.log, append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		// Only committed records: an aborted transaction's record was
		// never part of the message's journey.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Retention may remove the offset between bounds and the fetch;
		// without a reset the fetch reports it instead of silently
		// reading from the partition's new start.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	}, rd.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("record reader: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil {
				ferr = err
			}
		})
		if errors.Is(ferr, kerr.OffsetOutOfRange) {
			return nil, fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ErrRecordGone)
		}
		if ferr != nil && !kerr.IsRetriable(ferr) {
			return nil, fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ferr)
		}
		var got *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if got == nil && r.Offset >= offset {
				got = r
			}
		})
		switch {
		case got == nil:
			continue
		case got.Offset == offset:
			return got, nil
		default:
			// The first committed record is past the offset: what was
			// there is not readable any more.
			return nil, fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ErrRecordGone)
		}
	}
}

// bounds checks offset against the partition's start and its last
// stable offset.
func (rd *Reader) bounds(ctx context.Context, topic string, partition int32, offset int64) error {
	starts, err := rd.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	start, ok := starts.Lookup(topic, partition)
	if !ok {
		return fmt.Errorf("reading %s/%d: %w", topic, partition, ErrNotFound)
	}
	if start.Err != nil {
		if errors.Is(start.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("reading %s/%d: %w", topic, partition, ErrNotFound)
		}
		return fmt.Errorf("listing start offsets of %s: %w", topic, start.Err)
	}
	if offset < start.Offset {
		return fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ErrRecordGone)
	}
	// The committed end (last stable offset): an offset at or past it is
	// not committed (yet).
	ends, err := rd.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	if end, ok := ends.Lookup(topic, partition); ok && end.Err == nil && offset >= end.Offset {
		return fmt.Errorf("reading %s/%d@%d: %w", topic, partition, offset, ErrNotFound)
	}
	return nil
}

// contentOf is a decoded record as the API shows it: the canonical
// record with snake_case keys, payload bytes as text (HL7 v2 and FHIR
// JSON are text), bytes that are not UTF-8 as {"base64": ...}, and a
// dead letter's embedded record decoded in turn when it decodes.
func (s *Server) contentOf(ctx context.Context, rec canonical.Record) any {
	out := plain(reflect.ValueOf(rec))
	if dl, ok := rec.(*canonical.DeadLetter); ok && s.d.Serde != nil {
		if m, ok := out.(map[string]any); ok {
			if inner, err := s.d.Serde.Decode(ctx, dl.Value); err == nil {
				m["value"] = plain(reflect.ValueOf(inner))
			}
		}
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

// plain turns a canonical value into JSON-ready maps, lists and scalars.
func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time)
			if t.IsZero() {
				return nil
			}
			return t.UTC()
		}
		m := make(map[string]any, v.NumField())
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			m[snake(f.Name)] = plain(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.IsNil() {
				return nil
			}
			return text(v.Bytes())
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = plain(it.Value())
		}
		return m
	}
	return v.Interface()
}

// text is b as a string when it is UTF-8, else base64.
func text(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]string{"base64": base64.StdEncoding.EncodeToString(b)}
}

// snake spells a Go field name in snake_case, keeping initialisms whole:
// MessageID → message_id, TLSIdentity → tls_identity.
func snake(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// A word starts at an upper-case letter after a lower-case
			// one, or before a lower-case one inside an initialism.
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
