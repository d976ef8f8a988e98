package pipeline

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

func TestErrorClass(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		err       error
		permanent bool
		class     string
	}{
		{Permanent(base), true, canonical.ErrorPermanent},
		{PermanentClass(canonical.ErrorRejectedAtIngress, base), true, canonical.ErrorRejectedAtIngress},
		{fmt.Errorf("wrapped: %w", PermanentClass(canonical.ErrorRejectedAtIngress, base)), true, canonical.ErrorRejectedAtIngress},
		{PermanentClass("", base), true, canonical.ErrorPermanent},
	}
	for i, tt := range tests {
		if IsPermanent(tt.err) != tt.permanent || ErrorClass(tt.err) != tt.class || !errors.Is(tt.err, base) {
			t.Errorf("%d: permanent %v class %q", i, IsPermanent(tt.err), ErrorClass(tt.err))
		}
	}
	if PermanentClass("c", nil) != nil {
		t.Error("PermanentClass(nil) is not nil")
	}
}
