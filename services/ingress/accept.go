package ingress

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// Receipt is one frame as a listener received it: what accept needs,
// whatever the protocol.
type Receipt struct {
	Interface   Interface
	Protocol    string // mllp
	Peer        string // the sender's address
	TLSIdentity string // subject of the client certificate, "" without one
	Payload     []byte // the frame, framing removed
}

// accept is the protocol-neutral ingress step: it assigns the message ID,
// examines the frame, writes it to raw (with the verdict when it is
// refused) and returns the reply owed to the sender (nil for none) and
// whether the record was stored. What is owed is the ACK policy of ack.go;
// a refusal is stored with its verdict whether or not the store worked,
// since resending the same bytes cannot help. A listener calls accept for
// each message it receives and sends back the reply; if accept panics, the
// listener answers with panicReply (ack.go).
func (s *Service) accept(ctx context.Context, rc Receipt) (reply []byte, stored bool) {
	received := time.Now()
	id := s.newID(received)
	it := rc.Interface
	log := s.log.With(logattr.Interface(it.Name), logattr.MessageID(id))
	// The root span of the message's trace. Attributes are routing
	// metadata only, never content.
	ctx, span := s.tracer.Start(ctx, "ingress receive", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("hl7bus.interface", it.Name), attribute.String("hl7bus.message_id", id)))
	defer span.End()
	ackSent := "none"
	msgType := "unknown"
	// done stays false when accept panics: then panicReply counts the
	// message, with the code it sends.
	done := false
	defer func() {
		if !done {
			return
		}
		s.messages.WithLabelValues(it.Name, msgType, ackSent).Inc()
		s.ackTime.WithLabelValues(it.Name).Observe(time.Since(received).Seconds())
	}()

	ex := s.examine(it, rc.Payload)
	mode := it.WithDefaults().Ordering
	raw := &canonical.Raw{MessageID: id, Interface: it.Name, ReceivedAt: received, Protocol: rc.Protocol,
		Peer: rc.Peer, TLSIdentity: rc.TLSIdentity, Payload: rc.Payload, Ordering: mode, Rejected: ex.rejection}
	summary := ex.msg
	if summary == nil {
		summary = ex.head
	}
	if summary != nil {
		raw.Header = canonical.HeaderOf(summary)
		msgType = metricType(raw.Header.MessageCode, raw.Header.TriggerEvent)
		span.SetAttributes(attribute.String("hl7bus.message_type", msgType))
	}
	raw.OrderingKey = canonical.OrderingKey(mode, it.Name, summary, id)

	err := s.store(ctx, raw)
	if limit, ok := s.tooLarge(ctx, err); ok {
		// The record can never be written: keep the receipt without the
		// payload, so the refusal is on record, and answer AR. Only a
		// misconfiguration gets here (the interface limit is below the
		// record limit), but it must never be an AE resent forever.
		reason := fmt.Sprintf("message too large: %d bytes; with its receipt it exceeds the %d bytes a record can hold", len(rc.Payload), limit)
		log.Error("message too large for the raw topic", logattr.Reason(reason), logattr.Error(err))
		receipt := *raw
		receipt.Payload = nil
		receipt.Rejected = &canonical.Rejection{Code: canonical.RejectTooLarge, Reason: reason}
		err = s.store(ctx, &receipt)
		if ex.answer != answerNone {
			ex.answer, ex.rejection = answerReject, receipt.Rejected
			ex.issues = []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: hl7v2.CodeInternalError, Rule: "size", Text: reason}}
		}
	}
	stored = err == nil

	switch ex.answer {
	case answerNone:
		log.Warn("sender sent an acknowledgement to an inbound interface; stored, not answered",
			logattr.Reason(ex.rejection.Reason), logattr.Stored(stored))
		done = true
		return nil, stored
	case answerReject:
		log.Warn("message rejected", logattr.Reason(ex.rejection.Code+": "+ex.rejection.Reason), logattr.Stored(stored))
		span.SetStatus(codes.Error, ex.rejection.Code)
		reply, ackSent = s.rejectReply(ex, id, received)
		done = true
		return reply, stored
	}
	if summary != nil {
		log = log.With(logattr.ControlID(summary.ControlID()))
	}
	if !stored {
		span.SetStatus(codes.Error, "not stored")
	} else if ex.answer == answerProfileError {
		log.Info("message fails its conformance profile; stored, not routed", logattr.Reason(ex.rejection.Reason))
		span.SetStatus(codes.Error, ex.rejection.Code)
	} else {
		log.Debug("message accepted")
	}
	reply, ackSent = s.acceptReply(ex, stored, id, received)
	done = true
	return reply, stored
}

// store writes the raw record and waits until Kafka has it.
func (s *Service) store(ctx context.Context, raw *canonical.Raw) error {
	v, err := s.serde.Encode(raw)
	if err != nil {
		s.log.Error("encoding raw record", logattr.MessageID(raw.MessageID), logattr.Error(err))
		return err
	}
	// The record carries ctx, so the publish hook injects the trace context
	// into its headers.
	err = s.producer.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(raw.OrderingKey), Value: v, Context: ctx}).FirstErr()
	if err != nil {
		s.log.Error("storing raw record", logattr.MessageID(raw.MessageID), logattr.Error(err))
	}
	return err
}

// tooLarge reports whether err says the record is larger than the client
// or the broker takes (franz-go's client-side check and the broker both
// answer MESSAGE_TOO_LARGE; a broker may say RECORD_LIST_TOO_LARGE), and
// the limit to name: the lower of the producer's batch limit and the raw
// topic's max.message.bytes.
func (s *Service) tooLarge(ctx context.Context, err error) (int, bool) {
	if err == nil || !errors.Is(err, kerr.MessageTooLarge) && !errors.Is(err, kerr.RecordListTooLarge) {
		return 0, false
	}
	limit, _ := s.producer.OptValue(kgo.ProducerBatchMaxBytes).(int32)
	n := int(limit)
	if t := s.topicLimit(ctx); t > 0 && (n <= 0 || t < n) {
		n = t
	}
	return n, true
}

// topicLimit reads the raw topic's max.message.bytes, 0 when it cannot.
func (s *Service) topicLimit(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(s.producer).DescribeTopicConfigs(ctx, s.topic)
	if err != nil {
		return 0
	}
	rc, err := rcs.On(s.topic, nil)
	if err != nil {
		return 0
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			n, _ := strconv.Atoi(*c.Value)
			return n
		}
	}
	return 0
}

// metricType is CODE^EVENT for a metric label, CODE when the event is not
// an HL7 one, or "other".
func metricType(code, event string) string {
	// Only codes HL7 defines (tables 0076 and 0003) become labels: a label
	// set must stay bounded whatever senders send.
	if t, ok := defs.LookupTable(76); !ok || !t.Has(code) {
		return "other"
	}
	if t, ok := defs.LookupTable(3); !ok || !t.Has(event) {
		return code
	}
	return code + "^" + event
}
