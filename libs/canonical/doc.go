// Package canonical holds the Go form of every record hl7bus writes to
// Kafka, their Avro codecs (the schemas in /schemas, through goavro) and the
// Confluent wire format (magic byte, schema ID, Avro body) with schema
// registration under <topic>-value.
//
// Records are converted to and from goavro's native maps by hand, field by
// field: it keeps the Go types plain, and a record written by an older
// schema (a field missing) decodes with that field's zero value, which is
// what BACKWARD compatibility needs on replay.
package canonical
