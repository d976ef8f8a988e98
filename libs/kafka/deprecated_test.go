package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// TestDeprecatedMarksAgree: until egress moves to libs/pipeline, an error
// pipeline marks permanent is permanent for kafka.IsPermanent too (egress
// checks pipeline.Decode's errors with it), and kafka.DeadLetter builds
// what pipeline.DeadLetter does.
func TestDeprecatedMarksAgree(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"pipeline.Permanent", pipeline.Permanent(base), true},
		{"pipeline.PermanentClass wrapped", fmt.Errorf("w: %w", pipeline.PermanentClass(pipeline.ClassPanic, base)), true},
		{"pipeline.Decode's failure", decodeErr(t), true},
		{"transient", base, false},
	}
	for _, tt := range tests {
		if got := kafka.IsPermanent(tt.err); got != tt.permanent || pipeline.IsPermanent(tt.err) != tt.permanent {
			t.Errorf("%s: kafka.IsPermanent %v, pipeline.IsPermanent %v", tt.name, got, pipeline.IsPermanent(tt.err))
		}
	}
	rec := &kgo.Record{Topic: "in", Partition: 1, Offset: 2, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("1")}}}
	now := time.Now()
	old := kafka.DeadLetter("egress", kafka.Ident{MessageID: "M", ControlID: "C"}, rec, "permanent", "r", 2, now, now)
	moved := pipeline.DeadLetter("egress", pipeline.Ident{MessageID: "M", ControlID: "C"}, rec, "permanent", "r", 2, now, now)
	if !reflect.DeepEqual(old, moved) {
		t.Errorf("kafka.DeadLetter %+v\npipeline.DeadLetter %+v", old, moved)
	}
}

// decodeErr returns what pipeline.Decode says of bytes that are no record.
func decodeErr(t *testing.T) error {
	t.Helper()
	env := kafkatest.New(t)
	_, err := pipeline.Decode[*canonical.Out](context.Background(), env.Serde, []byte("not avro"))
	if err == nil {
		t.Fatal("decoding garbage succeeded")
	}
	return err
}
