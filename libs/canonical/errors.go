package canonical

import "errors"

// The sentinels of this package. Each has one meaning, so a caller can
// classify a failure with errors.Is alone: a schema that was never embedded
// is a programming error, one never registered by this process is a
// start-up ordering bug, and an ID the registry cannot give is (usually) an
// outage or a race with a producer, worth retrying.

// ErrWireFormat is returned by Decode and DecodeNative for bytes that are
// not in the Confluent wire format (magic byte 0, four-byte schema ID,
// Avro body).
var ErrWireFormat = errors.New("canonical: not Confluent wire format")

// ErrNoSuchSchema is returned by Register for a schema name that the
// schemas package does not embed.
var ErrNoSuchSchema = errors.New("canonical: no such schema")

// ErrSchemaNotRegistered is returned by Encode for a record kind whose
// schema this Serde never registered (Register was not called for it).
var ErrSchemaNotRegistered = errors.New("canonical: schema not registered")

// ErrUnknownSchemaID is returned by Decode and DecodeNative when the
// registry does not give the writer schema of a record's ID: it does not
// know the ID, or it cannot be reached. The registry's error is wrapped
// too, so a caller can tell the two apart; the pipeline treats both as
// transient (a registry outage must hold the partition, not dead-letter).
var ErrUnknownSchemaID = errors.New("canonical: unknown schema ID")
