package modules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/admin/api"
	"github.com/hl7bus/hl7bus/services/index"
)

// adminIndex adapts the message index to the admin API's Index: the
// admin module never imports services/index (stages meet only here).
type adminIndex struct {
	store  *index.Store
	secret []byte
}

// newAdminIndex returns store as the admin API's Index; secret is the
// patient-key secret the index consumer keys identifiers with
// (index.ReadSecret of index.secret_file).
func newAdminIndex(store *index.Store, secret []byte) admin.Index {
	return &adminIndex{store: store, secret: secret}
}

// PatientKey implements admin.Index.
func (a *adminIndex) PatientKey(authority, id string) string {
	return index.PatientKey(a.secret, authority, id)
}

// mapErr turns the index's errors into the admin API's: not found is
// 404, a cursor the index did not make is 400 naming cursor.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, index.ErrNotFound):
		return fmt.Errorf("%w: %w", admin.ErrNotFound, err)
	case errors.Is(err, index.ErrBadCursor):
		return &admin.FieldError{Param: "cursor", Msg: "malformed cursor"}
	}
	return err
}

// Search implements admin.Index. A patient ID is hashed as the index
// stored it: with its authority, or without one, which every identifier
// is also stored under, so a bare ID finds it whatever its authority.
func (a *adminIndex) Search(ctx context.Context, q admin.SearchQuery) (api.MessagePage, error) {
	if q.Status != "" && !index.Known(q.Status) {
		return api.MessagePage{}, &admin.FieldError{Param: "status", Msg: "unknown status"}
	}
	iq := index.Query{ControlID: q.ControlID, Interface: q.Interface, SendingFacility: q.Facility, MessageType: q.Type,
		Status: q.Status, Since: q.Since, Until: q.Until, Limit: q.Limit, Cursor: q.Cursor}
	if q.PatientID != "" {
		iq.PatientKey = a.PatientKey(q.PatientAuthority, q.PatientID)
	}
	rows, next, err := a.store.Search(ctx, iq)
	if err != nil {
		return api.MessagePage{}, mapErr(err)
	}
	page := api.MessagePage{Messages: make([]api.Message, 0, len(rows)), NextCursor: next}
	for _, r := range rows {
		page.Messages = append(page.Messages, apiMessage(r))
	}
	return page, nil
}

func apiMessage(r index.MessageRow) api.Message {
	m := api.Message{MessageID: r.MessageID, ParentMessageID: r.ParentMessageID, ControlID: r.ControlID, Interface: r.Interface,
		SendingFacility: r.SendingFacility, Type: r.MessageType, ReceivedAt: r.ReceivedAt, Status: r.Status, StageStatus: r.StageStatus,
		TraceID: r.TraceID, ConfigVersion: r.ConfigVersion, UpdatedAt: r.UpdatedAt, Destinations: make([]api.DestinationStatus, 0, len(r.Destinations))}
	for _, d := range r.Destinations {
		m.Destinations = append(m.Destinations, api.DestinationStatus{Name: d.Destination, Status: d.Status, Attempts: d.Attempts,
			LastOutcome: d.LastOutcome, UpdatedAt: d.UpdatedAt})
	}
	return m
}

func apiDeadLetter(d index.DeadLetter) api.DeadLetter {
	out := api.DeadLetter{ID: d.ID, MessageID: d.MessageID, ControlID: d.ControlID, Stage: d.Stage, Destination: d.Destination,
		ErrorClass: d.ErrorClass, Reason: d.Reason, FailedAt: d.FailedAt, Replayed: d.Replayed}
	if d.Discarded != nil {
		out.Discarded = &api.Discarded{Actor: d.Discarded.Actor, Reason: d.Discarded.Reason, At: d.Discarded.At}
	}
	return out
}

func entry(d index.MessageDetail) admin.IndexEntry {
	e := admin.IndexEntry{Message: apiMessage(d.MessageRow), PatientKey: d.PatientKey,
		Records: make([]api.Record, 0, len(d.Pointers)), DeadLetters: make([]api.DeadLetter, 0, len(d.DeadLetters))}
	for _, p := range d.Pointers {
		e.Records = append(e.Records, api.Record{Kind: p.Kind, Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, At: p.At})
	}
	for _, dl := range d.DeadLetters {
		e.DeadLetters = append(e.DeadLetters, apiDeadLetter(dl))
	}
	return e
}

// Message implements admin.Index.
func (a *adminIndex) Message(ctx context.Context, id string) (*admin.IndexEntry, error) {
	d, err := a.store.Message(ctx, id)
	if err != nil {
		return nil, mapErr(err)
	}
	e := entry(*d)
	return &e, nil
}

// DeadLetters implements admin.Index.
func (a *adminIndex) DeadLetters(ctx context.Context, q admin.DeadLetterQuery) (api.DeadLetterPage, error) {
	rows, next, err := a.store.DeadLetters(ctx, index.DeadLetterFilter{Stage: q.Stage, IncludeDiscarded: q.IncludeDiscarded},
		index.Page{Limit: q.Limit, Cursor: q.Cursor})
	if err != nil {
		return api.DeadLetterPage{}, mapErr(err)
	}
	page := api.DeadLetterPage{DeadLetters: make([]api.DeadLetter, 0, len(rows)), NextCursor: next}
	for _, d := range rows {
		page.DeadLetters = append(page.DeadLetters, apiDeadLetter(d))
	}
	return page, nil
}

// DeadLetter implements admin.Index.
func (a *adminIndex) DeadLetter(ctx context.Context, id string) (*api.DeadLetter, error) {
	d, err := a.store.DeadLetter(ctx, id)
	if err != nil {
		return nil, mapErr(err)
	}
	out := apiDeadLetter(*d)
	return &out, nil
}

// Audit implements admin.Index.
func (a *adminIndex) Audit(ctx context.Context, q admin.AuditQuery) (api.AuditPage, error) {
	rows, next, err := a.store.Audit(ctx, index.AuditQuery{Actor: q.Actor, Action: q.Action, Since: q.Since, Until: q.Until,
		Limit: q.Limit, Cursor: q.Cursor})
	if err != nil {
		return api.AuditPage{}, mapErr(err)
	}
	page := api.AuditPage{Events: make([]api.AuditEvent, 0, len(rows)), NextCursor: next}
	for _, r := range rows {
		page.Events = append(page.Events, api.AuditEvent{EventID: r.EventID, At: r.At, Service: r.Service, Actor: r.Actor, Role: r.Role,
			Auth: r.Auth, Action: r.Action, Resource: r.Resource, Selector: r.Selector, Count: r.Count, Outcome: r.Outcome,
			Remote: r.Remote, Detail: r.Detail})
	}
	return page, nil
}

// Counts implements admin.Index.
func (a *adminIndex) Counts(ctx context.Context, since time.Time) (map[string]map[string]int64, map[string]map[string]int64, error) {
	return a.store.Counts(ctx, since)
}

// Select implements admin.Index: limit+1 rows at most, so the caller
// sees that a selector matches more than it allows.
func (a *adminIndex) Select(ctx context.Context, s api.ReplaySelector, limit int) ([]admin.IndexEntry, error) {
	if len(s.MessageIDs) > index.MaxSelectIDs || len(s.DeadLetters) > index.MaxSelectIDs {
		return nil, &admin.FieldError{Param: "selector", Msg: fmt.Sprintf("names more than %d IDs; narrow it", index.MaxSelectIDs)}
	}
	if s.Status != "" && !index.Known(s.Status) {
		return nil, &admin.FieldError{Param: "selector.status", Msg: "unknown status"}
	}
	rows, err := a.store.Select(ctx, index.Selector{MessageIDs: s.MessageIDs, DeadLetterIDs: s.DeadLetters, ControlID: s.ControlID,
		Interface: s.Interface, MessageType: s.Type, Status: s.Status, Destination: s.Destination, Since: s.Since, Until: s.Until}, limit+1)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]admin.IndexEntry, 0, len(rows))
	for _, r := range rows {
		out = append(out, entry(r))
	}
	return out, nil
}

// NewerDelivered implements admin.Index.
func (a *adminIndex) NewerDelivered(ctx context.Context, patientKey, destination string, at time.Time, messageID string) (string, error) {
	return a.store.NewerDelivered(ctx, patientKey, destination, at, messageID)
}
