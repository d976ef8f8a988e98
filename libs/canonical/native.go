package canonical

import (
	"time"

	"github.com/hl7bus/hl7bus/schemas"
)

// Record is implemented by every record type of this package.
type Record interface {
	// Schema names the schema file the record is encoded with.
	Schema() string
	toNative() map[string]any
}

// Schema implementations.
func (*Raw) Schema() string         { return schemas.Raw }
func (*Parsed) Schema() string      { return schemas.Parsed }
func (*Transformed) Schema() string { return schemas.Transformed }
func (*Out) Schema() string         { return schemas.Out }
func (*DeadLetter) Schema() string  { return schemas.DeadLetter }
func (*Delivery) Schema() string    { return schemas.Delivery }
func (*Decision) Schema() string    { return schemas.Decisions }
func (*AuditEvent) Schema() string  { return schemas.Audit }
func (*ControlState) Schema() string {
	return schemas.Control
}
func (*ReplayRecord) Schema() string { return schemas.Replay }

// fromNative builds the record of a schema from goavro's native form.
var fromNative = map[string]func(map[string]any) Record{
	schemas.Raw: func(m map[string]any) Record {
		r := &Raw{MessageID: str(m, "message_id"), Interface: str(m, "interface"), ReceivedAt: ts(m, "received_at"),
			Protocol: str(m, "protocol"), Peer: str(m, "peer"), TLSIdentity: optStr(m, "tls_identity"),
			OrderingKey: str(m, "ordering_key"), Header: headerFrom(m["header"]), Payload: byt(m, "payload"),
			Ordering: str(m, "ordering")}
		if rm, ok := unionValue(m["rejected"]).(map[string]any); ok {
			r.Rejected = &Rejection{Code: str(rm, "code"), Reason: str(rm, "reason")}
		}
		return r
	},
	schemas.Parsed: func(m map[string]any) Record {
		p := &Parsed{MessageID: str(m, "message_id"), Interface: str(m, "interface"), ReceivedAt: ts(m, "received_at"),
			OrderingKey: str(m, "ordering_key"), Header: headerFrom(m["header"]), Delimiters: str(m, "delimiters"),
			Payload: byt(m, "payload"), ParentMessageID: optStr(m, "parent_message_id")}
		vm, _ := m["validation"].(map[string]any)
		p.Validation = Validation{Version: str(vm, "version"), Structure: str(vm, "structure"), Valid: boolean(vm, "valid"),
			Issues: issuesFrom(list(vm, "issues")), IssuesTruncated: int(num(vm, "issues_truncated"))}
		return p
	},
	schemas.Transformed: func(m map[string]any) Record {
		t := &Transformed{MessageID: str(m, "message_id"), Interface: str(m, "interface"), ReceivedAt: ts(m, "received_at"),
			OrderingKey: str(m, "ordering_key"), Header: headerFrom(m["header"]), Message: byt(m, "message"),
			MessageTime: optStr(m, "message_time"), MessageTimeOffset: optStr(m, "message_time_offset"),
			ConfigVersion: str(m, "config_version"), Issues: issuesFrom(list(m, "issues")), ParentMessageID: optStr(m, "parent_message_id")}
		if pm, ok := unionValue(m["patient"]).(map[string]any); ok {
			p := &Patient{FamilyName: str(pm, "family_name"), GivenName: str(pm, "given_name"),
				BirthDate: str(pm, "birth_date"), Sex: str(pm, "sex")}
			for _, i := range list(pm, "identifiers") {
				im, _ := i.(map[string]any)
				p.Identifiers = append(p.Identifiers, Identifier{Value: str(im, "value"), Authority: str(im, "authority"), Type: str(im, "type")})
			}
			t.Patient = p
		}
		return t
	},
	schemas.Out: func(m map[string]any) Record {
		return &Out{MessageID: str(m, "message_id"), Interface: str(m, "interface"), ReceivedAt: ts(m, "received_at"),
			OrderingKey: str(m, "ordering_key"), ControlID: str(m, "control_id"), Destination: str(m, "destination"),
			Route: str(m, "route"), ContentType: str(m, "content_type"), Payload: byt(m, "payload"),
			ConfigVersion: str(m, "config_version")}
	},
	schemas.DeadLetter: func(m map[string]any) Record {
		d := &DeadLetter{MessageID: str(m, "message_id"), ControlID: str(m, "control_id"), Stage: str(m, "stage"), ErrorClass: str(m, "error_class"),
			Reason: str(m, "reason"), SourceTopic: str(m, "source_topic"), SourcePartition: int32(num(m, "source_partition")),
			SourceOffset: num(m, "source_offset"), Attempts: int(num(m, "attempts")), FirstFailedAt: ts(m, "first_failed_at"),
			LastFailedAt: ts(m, "last_failed_at"), Value: byt(m, "value"),
			Destination: optStr(m, "destination"), Program: optStr(m, "program")}
		if k, ok := unionValue(m["key"]).([]byte); ok {
			d.Key = k
		}
		if hm, ok := m["headers"].(map[string]any); ok && len(hm) > 0 {
			d.Headers = make(map[string][]byte, len(hm))
			for k, v := range hm {
				b, _ := v.([]byte)
				d.Headers[k] = b
			}
		}
		return d
	},
	schemas.Delivery: func(m map[string]any) Record {
		d := &Delivery{MessageID: str(m, "message_id"), ControlID: str(m, "control_id"), Destination: str(m, "destination"),
			Attempt: int(num(m, "attempt")), Outcome: str(m, "outcome"), AckCode: str(m, "ack_code"), Error: str(m, "error"),
			LatencyMS: dbl(m, "latency_ms"), At: ts(m, "at")}
		if topic := optStr(m, "source_topic"); topic != "" {
			d.Source = &RecordRef{Topic: topic, Partition: int32(optNum(m, "source_partition")), Offset: optNum(m, "source_offset")}
		}
		return d
	},
	schemas.Audit: func(m map[string]any) Record {
		return &AuditEvent{EventID: str(m, "event_id"), At: ts(m, "at"), Service: str(m, "service"), Actor: str(m, "actor"),
			Role: str(m, "role"), Auth: str(m, "auth"), Action: str(m, "action"), Resource: str(m, "resource"),
			Selector: str(m, "selector"), Count: num(m, "count"), Outcome: str(m, "outcome"), Remote: str(m, "remote"),
			Detail: str(m, "detail")}
	},
	schemas.Control: func(m map[string]any) Record {
		c := &ControlState{Destination: str(m, "destination"), State: str(m, "state"), Reason: str(m, "reason"),
			Actor: str(m, "actor"), At: ts(m, "at"), ResetID: optStr(m, "reset_id")}
		if t, ok := unionValue(m["reset_to"]).(time.Time); ok {
			c.ResetTo = &t
		}
		return c
	},
	schemas.Replay: func(m map[string]any) Record {
		r := &ReplayRecord{Kind: str(m, "kind"), JobID: str(m, "job_id"), At: ts(m, "at")}
		if jm, ok := unionValue(m["job"]).(map[string]any); ok {
			r.Job = &ReplayJob{State: str(jm, "state"), Actor: str(jm, "actor"), Role: str(jm, "role"), Selector: str(jm, "selector"),
				Target: str(jm, "target"), Resend: boolean(jm, "resend"), ConfirmedNewer: boolean(jm, "confirmed_newer"),
				Rate: dbl(jm, "rate"), Total: num(jm, "total"), Sent: num(jm, "sent"), Skipped: num(jm, "skipped"),
				Failed: num(jm, "failed"), CreatedAt: ts(jm, "created_at"), UpdatedAt: ts(jm, "updated_at"), Error: str(jm, "error")}
		}
		if im, ok := unionValue(m["item"]).(map[string]any); ok {
			r.Item = &ReplayItem{MessageID: str(im, "message_id"), Destination: optStr(im, "destination"),
				TargetTopic: str(im, "target_topic"), DeadLetterID: optStr(im, "dead_letter_id"),
				Source: RecordRef{Topic: str(im, "source_topic"), Partition: int32(num(im, "source_partition")), Offset: num(im, "source_offset")}}
		}
		if dm, ok := unionValue(m["discard"]).(map[string]any); ok {
			r.Discard = &Discard{DeadLetterID: str(dm, "dead_letter_id"), MessageID: str(dm, "message_id"),
				Reason: str(dm, "reason"), Actor: str(dm, "actor")}
		}
		return r
	},
	schemas.Decisions: func(m map[string]any) Record {
		d := &Decision{MessageID: str(m, "message_id"), ParentMessageID: optStr(m, "parent_message_id"), Interface: str(m, "interface"),
			ControlID: str(m, "control_id"), MessageType: str(m, "message_type"), Stage: str(m, "stage"), DecidedAt: ts(m, "decided_at"),
			ConfigVersion: str(m, "config_version"), Outcome: str(m, "outcome"), Programs: strs(list(m, "programs"))}
		if fm, ok := unionValue(m["filter"]).(map[string]any); ok {
			d.Filter = &FilterDecision{Rule: str(fm, "rule"), Reason: str(fm, "reason")}
		}
		for _, r := range list(m, "routes") {
			rm, _ := r.(map[string]any)
			d.Routes = append(d.Routes, RouteDecision{Route: str(rm, "route"), Matched: boolean(rm, "matched"), Reason: str(rm, "reason"),
				Destinations: strs(list(rm, "destinations"))})
		}
		for _, x := range list(m, "destinations") {
			xm, _ := x.(map[string]any)
			d.Destinations = append(d.Destinations, DestinationDecision{Destination: str(xm, "destination"), Outcome: str(xm, "outcome"),
				Rule: str(xm, "rule"), Reason: str(xm, "reason")})
		}
		return d
	},
}

// issuesFrom reads the Issue records of parsed's validation and
// transformed's issues; nil when there are none.
func issuesFrom(l []any) []Issue {
	var out []Issue
	for _, i := range l {
		im, _ := i.(map[string]any)
		out = append(out, Issue{Severity: str(im, "severity"), Code: int(num(im, "code")),
			Location: str(im, "location"), Rule: str(im, "rule"), Text: str(im, "text")})
	}
	return out
}

func issuesNative(issues []Issue) []any {
	out := make([]any, len(issues))
	for i, is := range issues {
		out[i] = map[string]any{"severity": is.Severity, "code": int32(is.Code), "location": is.Location, "rule": is.Rule, "text": is.Text}
	}
	return out
}

func (h Header) toNative() map[string]any {
	return map[string]any{
		"sending_application": h.SendingApplication, "sending_facility": h.SendingFacility,
		"receiving_application": h.ReceivingApplication, "receiving_facility": h.ReceivingFacility,
		"message_code": h.MessageCode, "trigger_event": h.TriggerEvent, "message_structure": h.MessageStructure,
		"control_id": h.ControlID, "processing_id": h.ProcessingID, "version": h.Version, "charset": h.Charset,
	}
}

func headerFrom(v any) Header {
	m, _ := v.(map[string]any)
	return Header{SendingApplication: str(m, "sending_application"), SendingFacility: str(m, "sending_facility"),
		ReceivingApplication: str(m, "receiving_application"), ReceivingFacility: str(m, "receiving_facility"),
		MessageCode: str(m, "message_code"), TriggerEvent: str(m, "trigger_event"), MessageStructure: str(m, "message_structure"),
		ControlID: str(m, "control_id"), ProcessingID: str(m, "processing_id"), Version: str(m, "version"), Charset: str(m, "charset")}
}

func (r *Raw) toNative() map[string]any {
	var rejected any
	if r.Rejected != nil {
		rejected = map[string]any{"org.hl7bus.v1.Rejection": map[string]any{"code": r.Rejected.Code, "reason": r.Rejected.Reason}}
	}
	return map[string]any{"message_id": r.MessageID, "interface": r.Interface, "received_at": r.ReceivedAt.UTC(),
		"protocol": r.Protocol, "peer": r.Peer, "tls_identity": unionStr(r.TLSIdentity), "ordering_key": r.OrderingKey,
		"header": r.Header.toNative(), "payload": nonNil(r.Payload), "ordering": r.Ordering, "rejected": rejected}
}

func (p *Parsed) toNative() map[string]any {
	issues := issuesNative(p.Validation.Issues)
	return map[string]any{"message_id": p.MessageID, "interface": p.Interface, "received_at": p.ReceivedAt.UTC(),
		"ordering_key": p.OrderingKey, "header": p.Header.toNative(), "delimiters": p.Delimiters,
		"validation": map[string]any{"version": p.Validation.Version, "structure": p.Validation.Structure,
			"valid": p.Validation.Valid, "issues": issues, "issues_truncated": int32(p.Validation.IssuesTruncated)},
		"payload": nonNil(p.Payload), "parent_message_id": unionStr(p.ParentMessageID)}
}

func (t *Transformed) toNative() map[string]any {
	var patient any
	if t.Patient != nil {
		ids := make([]any, len(t.Patient.Identifiers))
		for i, id := range t.Patient.Identifiers {
			ids[i] = map[string]any{"value": id.Value, "authority": id.Authority, "type": id.Type}
		}
		patient = map[string]any{"org.hl7bus.v1.Patient": map[string]any{"identifiers": ids, "family_name": t.Patient.FamilyName,
			"given_name": t.Patient.GivenName, "birth_date": t.Patient.BirthDate, "sex": t.Patient.Sex}}
	}
	return map[string]any{"message_id": t.MessageID, "interface": t.Interface, "received_at": t.ReceivedAt.UTC(),
		"ordering_key": t.OrderingKey, "header": t.Header.toNative(), "message": nonNil(t.Message),
		"message_time": unionStr(t.MessageTime), "message_time_offset": unionStr(t.MessageTimeOffset), "patient": patient,
		"config_version": t.ConfigVersion, "issues": issuesNative(t.Issues), "parent_message_id": unionStr(t.ParentMessageID)}
}

func (o *Out) toNative() map[string]any {
	return map[string]any{"message_id": o.MessageID, "interface": o.Interface, "received_at": o.ReceivedAt.UTC(),
		"ordering_key": o.OrderingKey, "control_id": o.ControlID, "destination": o.Destination, "route": o.Route,
		"content_type": o.ContentType, "payload": nonNil(o.Payload), "config_version": o.ConfigVersion}
}

func (d *DeadLetter) toNative() map[string]any {
	var key any
	if d.Key != nil {
		key = map[string]any{"bytes": d.Key}
	}
	headers := make(map[string]any, len(d.Headers))
	for k, v := range d.Headers {
		headers[k] = nonNil(v)
	}
	return map[string]any{"message_id": d.MessageID, "control_id": d.ControlID, "stage": d.Stage, "error_class": d.ErrorClass, "reason": d.Reason,
		"source_topic": d.SourceTopic, "source_partition": d.SourcePartition, "source_offset": d.SourceOffset,
		"attempts": int32(d.Attempts), "first_failed_at": d.FirstFailedAt.UTC(), "last_failed_at": d.LastFailedAt.UTC(),
		"key": key, "value": nonNil(d.Value), "headers": headers,
		"destination": unionStr(d.Destination), "program": unionStr(d.Program)}
}

func (d *Delivery) toNative() map[string]any {
	m := map[string]any{"message_id": d.MessageID, "control_id": d.ControlID, "destination": d.Destination,
		"attempt": int32(d.Attempt), "outcome": d.Outcome, "ack_code": d.AckCode, "error": d.Error,
		"latency_ms": d.LatencyMS, "at": d.At.UTC(), "source_topic": nil, "source_partition": nil, "source_offset": nil}
	if d.Source != nil {
		m["source_topic"] = map[string]any{"string": d.Source.Topic}
		m["source_partition"] = map[string]any{"int": d.Source.Partition}
		m["source_offset"] = map[string]any{"long": d.Source.Offset}
	}
	return m
}

func (e *AuditEvent) toNative() map[string]any {
	return map[string]any{"event_id": e.EventID, "at": e.At.UTC(), "service": e.Service, "actor": e.Actor, "role": e.Role,
		"auth": e.Auth, "action": e.Action, "resource": e.Resource, "selector": e.Selector, "count": e.Count,
		"outcome": e.Outcome, "remote": e.Remote, "detail": e.Detail}
}

func (c *ControlState) toNative() map[string]any {
	var resetTo any
	if c.ResetTo != nil {
		resetTo = map[string]any{"long.timestamp-micros": c.ResetTo.UTC()}
	}
	return map[string]any{"destination": c.Destination, "state": c.State, "reason": c.Reason, "actor": c.Actor,
		"at": c.At.UTC(), "reset_id": unionStr(c.ResetID), "reset_to": resetTo}
}

func (r *ReplayRecord) toNative() map[string]any {
	var job, item, discard any
	if j := r.Job; j != nil {
		job = map[string]any{"org.hl7bus.v1.ReplayJob": map[string]any{"state": j.State, "actor": j.Actor, "role": j.Role,
			"selector": j.Selector, "target": j.Target, "resend": j.Resend, "confirmed_newer": j.ConfirmedNewer,
			"rate": j.Rate, "total": j.Total, "sent": j.Sent, "skipped": j.Skipped, "failed": j.Failed,
			"created_at": j.CreatedAt.UTC(), "updated_at": j.UpdatedAt.UTC(), "error": j.Error}}
	}
	if i := r.Item; i != nil {
		item = map[string]any{"org.hl7bus.v1.ReplayItem": map[string]any{"message_id": i.MessageID,
			"destination": unionStr(i.Destination), "target_topic": i.TargetTopic, "source_topic": i.Source.Topic,
			"source_partition": i.Source.Partition, "source_offset": i.Source.Offset, "dead_letter_id": unionStr(i.DeadLetterID)}}
	}
	if d := r.Discard; d != nil {
		discard = map[string]any{"org.hl7bus.v1.Discard": map[string]any{"dead_letter_id": d.DeadLetterID,
			"message_id": d.MessageID, "reason": d.Reason, "actor": d.Actor}}
	}
	return map[string]any{"kind": r.Kind, "job_id": r.JobID, "at": r.At.UTC(), "job": job, "item": item, "discard": discard}
}

func (d *Decision) toNative() map[string]any {
	var filter any
	if d.Filter != nil {
		filter = map[string]any{"org.hl7bus.v1.FilterDecision": map[string]any{"rule": d.Filter.Rule, "reason": d.Filter.Reason}}
	}
	routes := make([]any, len(d.Routes))
	for i, r := range d.Routes {
		routes[i] = map[string]any{"route": r.Route, "matched": r.Matched, "reason": r.Reason, "destinations": strsNative(r.Destinations)}
	}
	dests := make([]any, len(d.Destinations))
	for i, x := range d.Destinations {
		dests[i] = map[string]any{"destination": x.Destination, "outcome": x.Outcome, "rule": x.Rule, "reason": x.Reason}
	}
	return map[string]any{"message_id": d.MessageID, "parent_message_id": unionStr(d.ParentMessageID), "interface": d.Interface,
		"control_id": d.ControlID, "message_type": d.MessageType, "stage": d.Stage, "decided_at": d.DecidedAt.UTC(),
		"config_version": d.ConfigVersion, "outcome": d.Outcome, "filter": filter, "routes": routes,
		"destinations": dests, "programs": strsNative(d.Programs)}
}

// Helpers reading goavro's native values; a missing key (a record written
// by an older schema) reads as the zero value.

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func byt(m map[string]any, k string) []byte { b, _ := m[k].([]byte); return b }

func boolean(m map[string]any, k string) bool { b, _ := m[k].(bool); return b }

func dbl(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }

func list(m map[string]any, k string) []any { l, _ := m[k].([]any); return l }

// strs reads an array of strings; nil when empty.
func strs(l []any) []string {
	var out []string
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func strsNative(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func num(m map[string]any, k string) int64 {
	switch v := m[k].(type) {
	case int32:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

func ts(m map[string]any, k string) time.Time {
	t, _ := m[k].(time.Time)
	return t
}

func optStr(m map[string]any, k string) string { s, _ := unionValue(m[k]).(string); return s }

// optNum reads a nullable int or long.
func optNum(m map[string]any, k string) int64 {
	return num(map[string]any{k: unionValue(m[k])}, k)
}

// unionValue unwraps goavro's {"type": value} form of a union value.
func unionValue(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, x := range m {
			return x
		}
	}
	return v
}

func unionStr(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{"string": s}
}

// nonNil makes nil byte slices empty: Avro bytes cannot be null.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
