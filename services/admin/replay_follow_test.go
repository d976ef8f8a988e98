package admin

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// TestFollowerEndIsSticky: a runner's progress record that crossed the
// API's cancel on the topic does not revive the job; the job is marked
// stale (the runner rewrites its end) until an end record follows.
func TestFollowerEndIsSticky(t *testing.T) {
	f := newFollower(nil, slog.New(slog.DiscardHandler))
	at := time.Unix(100, 0)
	jobRec := func(id, state string, sent int64, created time.Time) *canonical.ReplayRecord {
		return jobRecord(id, canonical.ReplayJob{State: state, Sent: sent, Total: 10, CreatedAt: created, Selector: `{"message_ids":["M1"]}`}, at)
	}
	item := func(id, msg string, off int64) *canonical.ReplayRecord {
		return &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: id, Item: &canonical.ReplayItem{MessageID: msg,
			TargetTopic: "transformed", Source: canonical.RecordRef{Topic: "transformed", Offset: off}}}
	}
	steps := []struct {
		rec            *canonical.ReplayRecord
		state          string
		sent           int64
		running, stale []string
	}{
		{jobRec("J1", canonical.ReplayJobRunning, 0, at), "running", 0, []string{"J1"}, nil},
		{jobRec("J0", canonical.ReplayJobRunning, 0, at.Add(-time.Hour)), "running", 0, []string{"J0", "J1"}, nil},
		{item("J1", "M1", 1), "running", 1, []string{"J0", "J1"}, nil},
		{item("J1", "M2", 2), "running", 2, []string{"J0", "J1"}, nil},
		// M1's record reopened lis too: the same record, still 2 sent.
		{func() *canonical.ReplayRecord { r := item("J1", "M1", 1); r.Item.Destination = "lis"; return r }(), "running", 2, []string{"J0", "J1"}, nil},
		// M3's record was gone: handled, not sent.
		{func() *canonical.ReplayRecord { r := item("J1", "M3", 3); r.Item.TargetTopic = ""; return r }(), "running", 2, []string{"J0", "J1"}, nil},
		{jobRec("J1", canonical.ReplayJobCancelled, 1, at), "cancelled", 2, []string{"J0"}, nil},
		{jobRec("J1", canonical.ReplayJobRunning, 5, at), "cancelled", 5, []string{"J0"}, []string{"J1"}},
		{jobRec("J1", canonical.ReplayJobCancelled, 5, at), "cancelled", 5, []string{"J0"}, nil},
		{&canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, Discard: &canonical.Discard{DeadLetterID: "parse:0:1"}}, "cancelled", 5, []string{"J0"}, nil},
	}
	for i, s := range steps {
		f.applyOne(s.rec)
		j, ok := f.job("J1")
		if !ok || j.State != s.state || j.Sent != s.sent || j.Selector.MessageIDs[0] != "M1" {
			t.Errorf("step %d: J1 %+v %v", i, j, ok)
		}
		running, stale := f.runnable()
		if !slices.Equal(running, s.running) || !slices.Equal(stale, s.stale) {
			t.Errorf("step %d: running %v stale %v, want %v %v", i, running, stale, s.running, s.stale)
		}
	}
	if v, _ := f.view("J1"); len(v.items) != 4 || !v.items["M3/"] || !v.items["M1/lis"] {
		t.Errorf("handled items %v", v.items)
	}
	if jobs := f.jobs(); len(jobs) != 2 || jobs[0].ID != "J1" {
		t.Errorf("jobs newest first: %+v", jobs)
	}
}
