package egress

import "errors"

var (
	// ErrUnknownProtocol is returned by Service.Run for a destination whose
	// protocol has no adapter (Config.Validate reports it first, by key).
	ErrUnknownProtocol = errors.New("egress: no adapter for protocol")
	// ErrPanicked is the reason of a dead letter written because
	// delivering the message panicked (a bug in a sender or in egress),
	// wrapped with the panic value's type, never the value.
	ErrPanicked = errors.New("delivering the message panicked")
)
