package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Record kinds (api.Record.Kind) the detail reads for metadata; the
// index writes these spellings (services/index KindDecision,
// KindDelivery), which admin may not import.
const (
	kindDecision = "decision"
	kindDelivery = "delivery"
)

// searchMessages is GET /messages. A search by patient ID is audited
// (it tells whether a patient was seen), with the patient's index key
// as selector, never the identifier; it is refused when the event
// cannot be written.
func (s *Server) searchMessages(c *call) (int, any, error) {
	q := c.q
	sq := SearchQuery{
		ControlID:        q.str("control_id"),
		PatientID:        q.str("patient_id"),
		PatientAuthority: q.str("patient_authority"),
		Interface:        q.str("interface"),
		Facility:         q.str("facility"),
		Type:             q.str("type"),
		Status:           q.status("status"),
		Since:            q.time("since"),
		Until:            q.time("until"),
		Limit:            q.limit("limit"),
		Cursor:           q.str("cursor"),
	}
	if q.err != nil {
		return 0, nil, q.err
	}
	if sq.PatientAuthority != "" && sq.PatientID == "" {
		return 0, nil, &FieldError{Param: "patient_authority", Msg: "needs patient_id"}
	}
	if !sq.Since.IsZero() && !sq.Until.IsZero() && sq.Until.Before(sq.Since) {
		return 0, nil, &FieldError{Param: "until", Msg: "is before since"}
	}
	page, err := s.d.Index.Search(c.ctx(), sq)
	if err != nil {
		return 0, nil, fmt.Errorf("searching the index: %w", err)
	}
	if page.Messages == nil {
		page.Messages = []api.Message{}
	}
	if sq.PatientID != "" {
		sel := "patient_key:" + s.d.Index.PatientKey(sq.PatientAuthority, sq.PatientID)
		if err := c.audit(s.event(c, ActionMessageSearch, "messages", sel, int64(len(page.Messages)), canonical.AuditOK)); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, page, nil
}

// showMessage is GET /messages/{id}[?content=true]: the index's entry,
// the decisions and delivery attempts read back from their records, and
// with content=true every record's content. A content read is one audit
// event (count = records whose content is returned); when it cannot be
// written no content is returned.
func (s *Server) showMessage(c *call) (int, any, error) {
	withContent := c.q.boolean("content")
	if c.q.err != nil {
		return 0, nil, c.q.err
	}
	if withContent {
		if err := c.need(PermContent); err != nil {
			return 0, nil, err
		}
		if s.d.Records == nil || s.d.Serde == nil {
			return 0, nil, ErrUnavailable
		}
	}
	id := c.r.PathValue("id")
	e, err := s.d.Index.Message(c.ctx(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("reading message from the index: %w", err)
	}
	d := api.MessageDetail{
		Message:     e.Message,
		Records:     append([]api.Record(nil), e.Records...),
		Decisions:   []api.Decision{},
		Deliveries:  []api.Delivery{},
		DeadLetters: e.DeadLetters,
	}
	if d.Destinations == nil {
		d.Destinations = []api.DestinationStatus{}
	}
	if d.Records == nil {
		d.Records = []api.Record{}
	}
	if d.DeadLetters == nil {
		d.DeadLetters = []api.DeadLetter{}
	}
	var read int64
	for i := range d.Records {
		rec := &d.Records[i]
		rec.Content, rec.ContentError = nil, ""
		if !withContent && rec.Kind != kindDecision && rec.Kind != kindDelivery {
			continue
		}
		decoded, err := s.readRecord(c.ctx(), rec)
		if err != nil {
			rec.ContentError = contentError(err)
			continue
		}
		switch r := decoded.(type) {
		case *canonical.Decision:
			d.Decisions = append(d.Decisions, decisionOf(r))
		case *canonical.Delivery:
			d.Deliveries = append(d.Deliveries, deliveryOf(r))
		}
		if withContent {
			rec.Content = s.contentOf(c.ctx(), decoded)
			read++
		}
	}
	if withContent {
		ev := s.event(c, ActionContentRead, "message/"+id, "", read, canonical.AuditOK)
		if err := c.audit(ev); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, d, nil
}

// readRecord reads and decodes the record rec points at.
func (s *Server) readRecord(ctx context.Context, rec *api.Record) (canonical.Record, error) {
	if s.d.Records == nil || s.d.Serde == nil {
		return nil, ErrUnavailable
	}
	kr, err := s.d.Records.Read(ctx, rec.Topic, rec.Partition, rec.Offset)
	if err != nil {
		return nil, err
	}
	return decodeRecord(ctx, s.d.Serde, kr)
}

// decodeRecord decodes one Kafka record's value.
func decodeRecord(ctx context.Context, serde *canonical.Serde, kr *kgo.Record) (canonical.Record, error) {
	out, err := serde.Decode(ctx, kr.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUndecodable, err)
	}
	return out, nil
}

// errUndecodable marks a record read but not decoded.
var errUndecodable = errors.New("record does not decode")

// contentError says why a record's content is missing, in words that
// hold nothing of the record.
func contentError(err error) string {
	switch {
	case errors.Is(err, ErrRecordGone):
		return "the record is no longer on its topic (retention)"
	case errors.Is(err, errUndecodable):
		return "the record does not decode"
	case errors.Is(err, ErrUnavailable):
		return "records cannot be read by this process"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "reading the record timed out"
	}
	return "the record could not be read"
}

// decisionOf is a decision record's api form.
func decisionOf(r *canonical.Decision) api.Decision {
	d := api.Decision{Stage: r.Stage, DecidedAt: r.DecidedAt.UTC(), ConfigVersion: r.ConfigVersion, Outcome: r.Outcome}
	if r.Filter != nil {
		d.Filter = &api.FilterDecision{Rule: r.Filter.Rule, Reason: r.Filter.Reason}
	}
	for _, rd := range r.Routes {
		d.Routes = append(d.Routes, api.RouteDecision{Route: rd.Route, Matched: rd.Matched, Reason: rd.Reason, Destinations: rd.Destinations})
	}
	for _, dd := range r.Destinations {
		d.Destinations = append(d.Destinations, api.DestDecision{Destination: dd.Destination, Outcome: dd.Outcome, Rule: dd.Rule, Reason: dd.Reason})
	}
	return d
}

// deliveryOf is a delivery record's api form: metadata only. The
// attempt's error text is left out: it can quote the receiver's ACK
// (MSA-3, ERR), which may echo content.
func deliveryOf(r *canonical.Delivery) api.Delivery {
	return api.Delivery{
		Destination: r.Destination, Attempt: r.Attempt, Outcome: r.Outcome,
		AckCode: r.AckCode, LatencyMS: r.LatencyMS, At: r.At.UTC(),
	}
}

// knownStage reports whether name is a stage that dead-letters.
func knownStage(name string) bool {
	for _, s := range deadLetterStages {
		if s == name {
			return true
		}
	}
	return false
}

// deadLetterStages are the stages with a dlq.<stage> topic.
var deadLetterStages = []string{"ingress", "parse", "transform", "route", "egress"}

func joinStages() string { return strings.Join(deadLetterStages, ", ") }
