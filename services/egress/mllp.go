package egress

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// MLLP returns the adapter of protocol mllp: each sender owns one
// mllp.Client (MLLP allows one outstanding message per connection), and
// reads the receiver's HL7 ACK (verdict.go).
func MLLP() Adapter { return mllpAdapter{} }

type mllpAdapter struct{}

// Validate checks the keys mllp reads: address (host:port). ack's two
// switches need no check.
func (mllpAdapter) Validate(key string, d Destination) []error {
	if _, _, err := net.SplitHostPort(d.Address); err != nil {
		return []error{fmt.Errorf("%s.address: %v", key, err)}
	}
	return nil
}

func (mllpAdapter) NewSender(d Destination, log *slog.Logger) (Sender, error) {
	return &mllpSender{
		client: mllp.NewClient(d.Address, mllp.WithAckTimeout(d.AckTimeout)),
		check:  d.Ack,
		log:    log,
	}, nil
}

// mllpSender sends over one persistent MLLP connection.
type mllpSender struct {
	client *mllp.Client
	check  AckCheck
	log    *slog.Logger
}

// Send writes m's payload, waits for the ACK and judges it against MSH-10
// and MSH-12 of the payload actually sent.
func (s *mllpSender) Send(ctx context.Context, m *canonical.Out) Result {
	sent := headerOf(m.Payload, m.ControlID)
	ex, err := s.client.Exchange(ctx, m.Payload)
	j := judge(ex.Reply, err, sent, s.check)
	r := Result{Verdict: j.verdict, Reply: ex.Reply, Code: j.ackCode, Class: j.class, Reason: j.reason,
		Answered: j.answered, RoundTrip: ex.RoundTrip, Err: err}
	if j.answered && j.verdict == Failed && j.class != failAckError {
		// The reply is not this message's ACK: the stream is out of step
		// (a late reply would answer the next message), so start afresh.
		s.client.Reset()
		if j.class == failAckMismatch && j.ackControlID != "" {
			s.log.Warn("ACK names another message (MSA-2 differs); not delivered, retrying on a new connection",
				logattr.MessageID(m.MessageID), logattr.ControlID(m.ControlID), logattr.ControlIDInAck(j.ackControlID))
		}
	}
	return r
}

func (s *mllpSender) Close() error { return s.client.Close() }
