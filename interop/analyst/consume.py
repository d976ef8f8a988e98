"""The surveillance analyst's consumer, as a third-party test peer.

Reads hl7bus topics the way an analyst's tooling does: the Python
confluent-kafka client with AvroDeserializer, schemas fetched from the
registry by the ID each record carries. It is not part of hl7bus; it
proves that hl7bus's records are ordinary Confluent-format Avro.

Usage: consume.py --bootstrap HOST:PORT --registry URL --topic T[=N] [--topic T[=N]]
                  --expect N --ids FILE
Prints one JSON summary line and exits 0 only when every topic held its
number of committed records (N after the topic, else --expect) that
decoded, each with a message_id listed in FILE and the fields an analyst
relies on. Every string field must decode (fastavro refuses a string that
is not UTF-8); raw content travels in bytes fields.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

REQUIRED = {
    "raw": ["message_id", "interface", "received_at", "header", "payload", "rejected"],
    "parsed": ["message_id", "interface", "received_at", "header", "validation", "payload", "parent_message_id"],
    "transformed": ["message_id", "interface", "received_at", "header", "message", "patient"],
    "parse": ["message_id", "stage", "error_class", "reason", "value"],  # dlq.parse
    "lis": ["message_id", "destination", "control_id", "payload"],  # out.lis
    "delivery": ["message_id", "destination", "outcome"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", action="append", required=True, help="TOPIC or TOPIC=N records expected")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    with open(args.ids) as f:
        ids = {line.strip() for line in f if line.strip()}

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    summary, ok = {}, True
    for spec in args.topic:
        topic, _, n = spec.partition("=")
        expect = int(n) if n else args.expect
        consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": "analyst-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        })
        consumer.subscribe([topic])
        kind = topic.rsplit(".", 1)[-1]
        seen, errors = set(), []
        deadline = time.time() + args.timeout
        while len(seen) < expect and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(str(msg.error()))
                continue
            try:
                rec = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
            except Exception as e:  # noqa: BLE001 - report every decode failure
                errors.append(f"offset {msg.offset()}: {e}")
                continue
            missing = [f for f in REQUIRED.get(kind, ["message_id"]) if f not in rec]
            if missing:
                errors.append(f"offset {msg.offset()}: missing {missing}")
            if rec.get("message_id") not in ids:
                errors.append(f"offset {msg.offset()}: unexpected message_id")
            # The payload is the message exactly as received: a byte-order
            # mark or blank lines before its MSH are the sender's.
            if kind == "parsed" and not rec["payload"].lstrip(b"\xef\xbb\xbf\r\n \t").startswith(b"MSH"):
                errors.append(f"offset {msg.offset()}: payload is not the raw message")
            if kind == "parsed" and rec.get("parent_message_id") and not rec["message_id"].startswith(rec["parent_message_id"] + "-"):
                errors.append(f"offset {msg.offset()}: message_id does not derive from parent_message_id")
            if kind in ("raw", "parsed") and not isinstance(rec["payload"], bytes):
                errors.append(f"offset {msg.offset()}: payload is not bytes")
            seen.add(rec.get("message_id"))
        consumer.close()
        summary[topic] = {"records": len(seen), "expected": expect, "errors": errors[:5]}
        ok = ok and len(seen) == expect and not errors
    print(json.dumps({"ok": ok, "topics": summary}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
