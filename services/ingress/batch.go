package ingress

// Batches over MLLP. A frame holding an FHS/BHS batch is one raw record;
// ingress checks it whole (structure, BTS-1 and FTS-1 counts, and every
// message as if it came alone) and parse splits it. The answer follows the
// HL7 batch protocol, v2.5 chapter 2, section 2.10.3 ("HL7 batch
// protocol"), 2.10.3.3 "Acknowledging batches": the acknowledgement is the
// response batch, here the option where every message is acknowledged in
// it (one ACK per message, inside the same FHS/BHS envelope, BHS-12 and
// FHS-12 naming the batch acknowledged). When the batch is corrupt (a
// count that disagrees, headers that do not nest, a message that cannot
// be accepted) the entire batch is rejected, one AR whose MSA-2 is the
// batch control ID, since acknowledging part of a batch whose content is
// in doubt would deliver an unknown subset of it.

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// examineBatch checks a frame starting with FHS or BHS.
func (s *Service) examineBatch(it Interface, frame []byte, ex *examined) {
	ex.batch = true
	ex.batchID = batchControlID(frame)
	f, err := s.parser.ParseBatch(frame)
	if err != nil {
		var pe *hl7v2.ParseError
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "message "):
			// A message of the batch does not parse: "message 2 of batch 1: ...".
			where, _, _ := strings.Cut(msg, ": ")
			ex.reject(canonical.RejectUnparseable, where+": "+parseReason(err), hl7v2.CodeSegmentSequence, hl7v2.Location{})
		case errors.As(err, &pe) && errors.Is(pe.Err, hl7v2.ErrBatch):
			code, loc := canonical.RejectBatchStructure, hl7v2.Location{}
			reason := pe.Detail
			for _, t := range []string{"BTS", "FTS"} {
				if strings.HasPrefix(pe.Detail, t+"-1") {
					code, loc = canonical.RejectBatchCount, hl7v2.Location{Segment: t, Occurrence: 1, Field: 1}
				}
			}
			if strings.ContainsRune(reason, '"') || !utf8.ValidString(reason) {
				// The detail quotes the bad value (a count that is not a
				// number): keep the position, not the bytes.
				reason = fmt.Sprintf("%s-1 is not a number", loc.Segment)
			}
			ex.reject(code, "batch rejected: "+reason+fmt.Sprintf(" (segment %d)", pe.Segment), hl7v2.CodeSegmentSequence, loc)
		default:
			ec := hl7v2.CodeSegmentSequence
			if errors.Is(err, hl7v2.ErrDelimiters) {
				ec = hl7v2.CodeDataType
			}
			ex.reject(canonical.RejectUnparseable, "batch rejected: "+parseReason(err), ec, hl7v2.Location{})
		}
		return
	}
	ex.file = f
	msgs := f.Messages()
	acks := 0
	for _, m := range msgs {
		if hl7v2.IsAck(m) {
			acks++
		}
	}
	if acks > 0 && acks == len(msgs) {
		// A batch of acknowledgements sent as input: never answered.
		ex.answer = answerNone
		ex.rejection = &canonical.Rejection{Code: canonical.RejectAcknowledgement,
			Reason: fmt.Sprintf("a batch of %d acknowledgements sent to an inbound interface; acknowledgements are never acknowledged", acks)}
		return
	}
	n := 0
	for bi, b := range f.Batches {
		for mi, m := range b.Messages {
			n++
			where := fmt.Sprintf("batch rejected: message %d of batch %d: ", mi+1, bi+1)
			if hl7v2.IsAck(m) {
				ex.reject(canonical.RejectBatchStructure, where+"an acknowledgement (MSH-9 ACK) among other messages",
					hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "MSH", Occurrence: n})
				return
			}
			s.examineMessage(it, m, ex, where)
			if ex.rejection != nil {
				return
			}
		}
	}
}

// batchControlID returns BHS-11 of the frame's first BHS, else FHS-11:
// the batch control ID an AR for the whole batch names in MSA-2.
func batchControlID(frame []byte) string {
	var fhs string
	for _, seg := range segmentsOf(frame) {
		if len(seg) < 4 || !bytes.HasPrefix(seg, []byte("BHS")) && !bytes.HasPrefix(seg, []byte("FHS")) {
			continue
		}
		// BHS-1 is the separator itself: splitting on it gives BHS-n at n-1.
		parts := bytes.Split(seg, seg[3:4])
		id := ""
		if len(parts) > 10 {
			id = strings.ToValidUTF8(string(parts[10]), "\uFFFD")
		}
		if bytes.HasPrefix(seg, []byte("BHS")) {
			return id
		}
		fhs = id
	}
	return fhs
}

// batchAck builds the acknowledgement batch of an accepted batch: the
// envelope mirrored (sender and receiver swapped, FHS-12/BHS-12 naming the
// FHS-11/BHS-11 acknowledged), every message answered by code (its
// enhanced-mode variant for a message asking for enhanced mode), each ACK
// with MSH-10 <id>-<n> (n counting the messages of the frame from 1, the
// message IDs parse gives them).
func batchAck(f *hl7v2.File, code, text, id string, at time.Time) ([]byte, string, error) {
	var out []byte
	fs := []byte("|")
	envelope := func(h hl7v2.Segment, name, ctl string) {
		enc := []byte(`^~\&`)
		var fields [][]byte
		if h.Present() {
			// The envelope's own delimiters; a header without a BHS (FHS
			// then MSH) gets the default ones.
			fs, enc = h.Field(1).Raw(), h.Field(2).Raw()
			fields = [][]byte{h.Field(5).Raw(), h.Field(6).Raw(), h.Field(3).Raw(), h.Field(4).Raw()}
		} else {
			fields = make([][]byte, 4)
		}
		fields = append(fields, []byte(at.Format("20060102150405")), nil, nil, nil, []byte(ctl))
		if h.Present() {
			fields = append(fields, h.Field(11).Raw())
		}
		out = append(out, name...)
		out = append(out, fs...)
		out = append(out, enc...)
		for _, v := range fields {
			out = append(out, fs...)
			out = append(out, v...)
		}
		out = bytes.TrimRight(out, string(fs))
		out = append(out, '\r')
	}
	trailer := func(name string, count int) {
		out = append(out, name...)
		out = append(out, fs...)
		out = append(out, strconv.Itoa(count)+"\r"...)
	}
	sent := code
	n := 0
	if f.Header.Present() {
		envelope(f.Header, "FHS", id)
	}
	for bi, b := range f.Batches {
		envelope(b.Header, "BHS", id+"-b"+strconv.Itoa(bi+1))
		for _, m := range b.Messages {
			n++
			c := code
			if hl7v2.PlanAck(m).Enhanced {
				c = enhanced(code)
			}
			ack, err := buildAck(m, hl7v2.AckSpec{Code: c, ControlID: id + "-" + strconv.Itoa(n), Time: at, Text: text})
			if err != nil {
				return nil, "", fmt.Errorf("acknowledging message %d of batch %d: %w", n, bi+1, err)
			}
			out = append(out, ack.Bytes()...)
		}
		trailer("BTS", len(b.Messages))
	}
	if f.Header.Present() {
		trailer("FTS", len(f.Batches))
	}
	return out, sent, nil
}
