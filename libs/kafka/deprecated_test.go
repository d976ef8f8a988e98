package kafka_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// TestDeprecatedMarksAgree: until egress, parse.Handle and transform.Handle
// move to libs/pipeline, an error marked by either package classifies the
// same in both (egress checks pipeline.Decode's errors with
// kafka.IsPermanent; the runtime dead-letters parse's kafka.Permanent).
func TestDeprecatedMarksAgree(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		name      string
		err       error
		permanent bool
		class     string
	}{
		{"kafka.Permanent", kafka.Permanent(base), true, canonical.ErrorPermanent},
		{"kafka.PermanentClass wrapped", fmt.Errorf("w: %w", kafka.PermanentClass(canonical.ErrorRejectedAtIngress, base)), true, canonical.ErrorRejectedAtIngress},
		{"pipeline.Permanent", pipeline.Permanent(base), true, canonical.ErrorPermanent},
		{"pipeline.PermanentClass", pipeline.PermanentClass(pipeline.ClassPanic, base), true, pipeline.ClassPanic},
		{"transient", base, false, canonical.ErrorPermanent},
	}
	for _, tt := range tests {
		if kafka.IsPermanent(tt.err) != tt.permanent || pipeline.IsPermanent(tt.err) != tt.permanent ||
			kafka.ErrorClass(tt.err) != tt.class || pipeline.ErrorClass(tt.err) != tt.class {
			t.Errorf("%s: kafka %v/%s, pipeline %v/%s", tt.name, kafka.IsPermanent(tt.err), kafka.ErrorClass(tt.err),
				pipeline.IsPermanent(tt.err), pipeline.ErrorClass(tt.err))
		}
	}
	if kafka.Permanent(nil) != nil || kafka.PermanentClass("c", nil) != nil {
		t.Error("marking nil is not nil")
	}
}
