package kafka

import "errors"

// ErrHandlerPanicked is the reason a record is dead-lettered when the
// stage's handler panicked on it (returned by the Loop, wrapped as
// Permanent, into the dead letter; the panic value is never quoted).
var ErrHandlerPanicked = errors.New("the stage's handler panicked on this record")
