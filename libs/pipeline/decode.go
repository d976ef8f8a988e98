package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// Decode decodes a stage's input record as a T and classifies a failure
// for the loop: a schema the registry cannot give (yet) is transient, so
// the batch is retried; bytes that are not a T record never will be, so
// they are permanent and dead-lettered at once.
func Decode[T canonical.Record](ctx context.Context, serde *canonical.Serde, value []byte) (T, error) {
	var zero T
	rec, err := serde.Decode(ctx, value)
	if err != nil {
		if errors.Is(err, canonical.ErrUnknownSchemaID) {
			return zero, fmt.Errorf("decoding %s input: %w", zero.Schema(), err)
		}
		return zero, Permanent(fmt.Errorf("decoding %s input: %w", zero.Schema(), err))
	}
	t, ok := rec.(T)
	if !ok {
		return zero, Permanent(fmt.Errorf("expected a %s record, got %s", zero.Schema(), rec.Schema()))
	}
	return t, nil
}
