package index

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

func TestAuditSearch(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		var us []Update
		for i := range 5 {
			actor := "ana"
			if i%2 == 1 {
				actor = "olga"
			}
			us = append(us, p.Audit(src("audit", int64(i)), &canonical.AuditEvent{EventID: fmt.Sprintf("e%d", i), At: t0.Add(time.Duration(i) * time.Minute),
				Service: "admin", Actor: actor, Action: "message.content", Resource: "m1", Count: int64(i), Outcome: canonical.AuditOK})...)
		}
		us = append(us, p.Audit(src("audit", 9), &canonical.AuditEvent{At: t0, Actor: "ana", Action: "access.denied", Outcome: canonical.AuditDenied})...)
		apply(t, s, us, us) // twice: stored once

		ids := func(q AuditQuery) string {
			t.Helper()
			var got []string
			for {
				rows, next, err := s.Audit(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					got = append(got, r.EventID)
				}
				if next == "" {
					return strings.Join(got, ",")
				}
				q.Cursor = next
			}
		}
		tests := []struct {
			name string
			q    AuditQuery
			want string
		}{
			{"all, paged by 2", AuditQuery{Limit: 2}, "e4,e3,e2,e1,e0,audit:2:9"},
			{"actor", AuditQuery{Actor: "olga"}, "e3,e1"},
			{"action", AuditQuery{Action: "access.denied"}, "audit:2:9"},
			{"time range", AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, "e2,e1"},
			{"actor and action", AuditQuery{Actor: "ana", Action: "message.content", Limit: 1}, "e4,e2,e0"},
		}
		for _, tt := range tests {
			if got := ids(tt.q); got != tt.want {
				t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
			}
		}
		rows, _, err := s.Audit(ctx, AuditQuery{Actor: "olga", Limit: 1})
		if err != nil || len(rows) != 1 {
			t.Fatal(rows, err)
		}
		want := AuditRow{EventID: "e3", At: t0.Add(3 * time.Minute), Service: "admin", Actor: "olga", Action: "message.content", Resource: "m1", Count: 3, Outcome: "ok"}
		if rows[0] != want {
			t.Fatalf("row %+v, want %+v", rows[0], want)
		}
		if _, _, err := s.Audit(ctx, AuditQuery{Cursor: "!"}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}

func TestDiscardAndReplayDeadLetters(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		dl := func(off int64, id string) []Update {
			return p.DeadLetter(Source{Topic: "dlq.egress", Partition: 0, Offset: off}, &canonical.DeadLetter{MessageID: id, Stage: "egress",
				Destination: "lis", ErrorClass: canonical.ErrorPermanent, Reason: "AR", LastFailedAt: t0.Add(time.Duration(off) * time.Second)})
		}
		discard := func(id, actor, reason string, at time.Time) []Update {
			return p.Replay(src("replay", 1), &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: at,
				Discard: &canonical.Discard{DeadLetterID: id, MessageID: "m", Actor: actor, Reason: reason}})
		}
		// egress:0:2's discard is read before the dead letter itself.
		apply(t, s, discard("egress:0:2", "op", "duplicate", t0.Add(time.Hour)))
		apply(t, s, dl(1, "m1"), dl(2, "m2"), dl(3, "m3"), discard("egress:0:3", "op", "fixed by hand", t0.Add(time.Hour)))
		// A later discard of the same dead letter does not overwrite the first.
		apply(t, s, discard("egress:0:3", "other", "again", t0.Add(2*time.Hour)))
		item := p.Replay(src("replay", 2), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: t0.Add(3 * time.Hour),
			Item: &canonical.ReplayItem{MessageID: "m1", Destination: "lis", TargetTopic: "out.lis", DeadLetterID: "egress:0:1"}})
		item2 := p.Replay(src("replay", 3), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j2", At: t0.Add(4 * time.Hour),
			Item: &canonical.ReplayItem{MessageID: "m1", Destination: "lis", TargetTopic: "out.lis", DeadLetterID: "egress:0:1"}})
		apply(t, s, item, item, item2)

		list := func(f DeadLetterFilter) string {
			t.Helper()
			rows, _, err := s.DeadLetters(ctx, f, Page{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.ID)
			}
			return strings.Join(ids, ",")
		}
		if got := list(DeadLetterFilter{Stage: "egress"}); got != "egress:0:1" {
			t.Fatalf("waiting dead letters %s, want egress:0:1", got)
		}
		if got := list(DeadLetterFilter{IncludeDiscarded: true}); got != "egress:0:3,egress:0:2,egress:0:1" {
			t.Fatalf("all dead letters %s", got)
		}
		d, err := s.DeadLetter(ctx, "egress:0:3")
		if err != nil {
			t.Fatal(err)
		}
		if d.Discarded == nil || *d.Discarded != (Discarded{Actor: "op", Reason: "fixed by hand", At: t0.Add(time.Hour)}) || d.MessageID != "m3" {
			t.Fatalf("discarded dead letter %+v %+v", d, d.Discarded)
		}
		d, err = s.DeadLetter(ctx, "egress:0:2")
		if err != nil || d.Discarded == nil || d.MessageID != "m2" || d.Reason != "AR" || !d.FailedAt.Equal(t0.Add(2*time.Second)) {
			t.Fatalf("dead letter discarded before it was read: %+v, %v", d, err)
		}
		d, err = s.DeadLetter(ctx, "egress:0:1")
		if err != nil || d.Discarded != nil || !reflect.DeepEqual(d.Replayed, []string{"j1", "j2"}) {
			t.Fatalf("replayed dead letter %+v, %v", d, err)
		}
		if _, err := s.DeadLetter(ctx, "egress:0:99"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown dead letter: %v", err)
		}
		m, err := s.Message(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != StatusReplayed || len(m.DeadLetters) != 1 || len(m.DeadLetters[0].Replayed) != 2 {
			t.Fatalf("message after replay: %s %+v", m.Status, m.DeadLetters)
		}
	})
}

func TestReplayItemsOpenACycle(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "m1", "C1", t0),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "AR", 1, t0.Add(time.Second)))
		item := func(dest string, at time.Time) []Update {
			return p.Replay(src("replay", at.Unix()), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: at,
				Item: &canonical.ReplayItem{MessageID: "m1", Destination: dest, TargetTopic: "out." + dest}})
		}
		apply(t, s, item("lis", t0.Add(time.Hour)))
		m, _ := s.Message(ctx, "m1")
		if m.Status != StatusReplayed || destStatuses(m.MessageRow) != "ehr=delivered lis=replayed" {
			t.Fatalf("after the replay item: %s %s", m.Status, destStatuses(m.MessageRow))
		}
		var kinds []string
		for _, ptr := range m.Pointers {
			kinds = append(kinds, ptr.Kind)
		}
		if !strings.Contains(strings.Join(kinds, ","), KindReplay) {
			t.Fatalf("pointers %v: no replay item", kinds)
		}
		// The replayed copy is rejected again: the new cycle says so.
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "AR", 1, t0.Add(time.Hour+time.Second)))
		if m, _ = s.Message(ctx, "m1"); m.Status != StatusPartiallyDelivered {
			t.Fatalf("after the replayed copy was rejected: %s", m.Status)
		}
		// A whole-message replay marks the stage status.
		apply(t, s, item("", t0.Add(2*time.Hour)))
		if m, _ = s.Message(ctx, "m1"); m.StageStatus != StatusReplayed {
			t.Fatalf("stage status %s, want replayed", m.StageStatus)
		}
	})
}

func TestDeliveryOutPointer(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		p := Projector{Secret: secret}
		d := &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 1, Outcome: canonical.OutcomeDelivered, At: t0,
			Source: &canonical.RecordRef{Topic: "out.lis", Partition: 2, Offset: 41}}
		apply(t, s, journey(p, "m1", "C1", t0), p.Delivery(src("delivery", 1), d), p.Delivery(src("delivery", 1), d))
		m, err := s.Message(context.Background(), "m1")
		if err != nil {
			t.Fatal(err)
		}
		var outs []Pointer
		for _, ptr := range m.Pointers {
			if ptr.Kind == KindOut {
				outs = append(outs, ptr)
			}
		}
		if len(outs) != 1 || outs[0].Topic != "out.lis" || outs[0].Partition != 2 || outs[0].Offset != 41 {
			t.Fatalf("out pointers %+v", outs)
		}
	})
}

func TestCounts(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "old", "C0", t0.Add(-48*time.Hour)), journey(p, "m1", "C1", t0), journey(p, "m2", "C2", t0.Add(time.Second)),
			delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m2", "lis", canonical.OutcomeDeadLettered, "AR", 1, t0.Add(time.Second)))
		ifs, dests, err := s.Counts(context.Background(), t0.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]map[string]int64{"lab": {"delivered": 1, "routed": 1}}; !reflect.DeepEqual(ifs, want) {
			t.Fatalf("interfaces %v, want %v", ifs, want)
		}
		want := map[string]map[string]int64{"lis": {"delivered": 1, "rejected": 1}, "ehr": {"delivered": 1, "routed": 1}}
		if !reflect.DeepEqual(dests, want) {
			t.Fatalf("destinations %v, want %v", dests, want)
		}
	})
}

func TestSelect(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		// m3 is received first: selection is by received time, not ID.
		apply(t, s, journey(p, "m1", "C1", t0.Add(time.Second)), journey(p, "m2", "C2", t0.Add(2*time.Second)), journey(p, "m3", "C3", t0),
			delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(3*time.Second)),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(3*time.Second)),
			delivery(p, "m2", "lis", canonical.OutcomeDeadLettered, "AR", 1, t0.Add(3*time.Second)),
			p.DeadLetter(Source{Topic: "dlq.egress", Partition: 1, Offset: 5}, &canonical.DeadLetter{MessageID: "m2", Stage: "egress", Destination: "lis",
				ErrorClass: canonical.ErrorPermanent, LastFailedAt: t0.Add(3 * time.Second)}))
		ids := func(sel Selector, limit int) string {
			t.Helper()
			rows, err := s.Select(ctx, sel, limit)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				out = append(out, r.MessageID)
			}
			return strings.Join(out, ",")
		}
		tests := []struct {
			name  string
			sel   Selector
			limit int
			want  string
		}{
			{"everything since, oldest first", Selector{Since: t0}, 10, "m3,m1,m2"},
			{"limit", Selector{Since: t0}, 2, "m3,m1"},
			{"message IDs", Selector{MessageIDs: []string{"m2", "m1", "nope"}}, 10, "m1,m2"},
			{"dead letters", Selector{DeadLetterIDs: []string{"egress:1:5"}}, 10, "m2"},
			{"destination and status", Selector{Destination: "lis", Status: StatusRejected}, 10, "m2"},
			{"destination", Selector{Destination: "lis", Since: t0}, 10, "m3,m1,m2"},
			{"overall status", Selector{Status: StatusRouted}, 10, "m3,m2"},
			{"overall status delivered", Selector{Status: StatusDelivered}, 10, "m1"},
			{"control ID", Selector{ControlID: "C1"}, 10, "m1"},
			{"interface, type and range", Selector{Interface: "lab", MessageType: "ORU^R01", Since: t0.Add(time.Second), Until: t0.Add(2 * time.Second)}, 10, "m1"},
			{"zero limit", Selector{Since: t0}, 0, ""},
		}
		for _, tt := range tests {
			if got := ids(tt.sel, tt.limit); got != tt.want {
				t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
			}
		}
		rows, err := s.Select(ctx, Selector{MessageIDs: []string{"m2"}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		m := rows[0]
		if len(m.Pointers) != 6 || len(m.DeadLetters) != 1 || m.DeadLetters[0].ID != "egress:1:5" || destStatuses(m.MessageRow) != "ehr=routed lis=rejected" {
			t.Fatalf("selected row %+v", m)
		}
		if _, err := s.Select(ctx, Selector{Status: "bogus"}, 1); err == nil {
			t.Fatal("unknown status selected")
		}
	})
}

func TestNewerDelivered(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		// journey keys the patient by control ID: give m1..m3 one patient.
		patient := func(id string, at time.Time) []Update {
			return p.Transformed(src("transformed", 9), &canonical.Transformed{MessageID: id, Interface: "lab", ReceivedAt: at, Header: hdr,
				Patient: &canonical.Patient{Identifiers: []canonical.Identifier{{Value: "MRN-SAME", Authority: "HOSP"}}}})
		}
		apply(t, s, journey(p, "m1", "C1", t0), journey(p, "m2", "C2", t0.Add(time.Minute)), journey(p, "m3", "C3", t0.Add(2*time.Minute)),
			patient("m1", t0), patient("m2", t0.Add(time.Minute)), patient("m3", t0.Add(2*time.Minute)),
			delivery(p, "m2", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Hour)),
			delivery(p, "m3", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Hour)))
		key := PatientKey(secret, "HOSP", "MRN-SAME")
		tests := []struct {
			name, dest, msg string
			at              time.Time
			want            string
		}{
			{"newer delivered to lis", "lis", "m1", t0, "m2"},
			{"newer delivered to ehr", "ehr", "m1", t0, "m3"},
			{"nothing newer delivered to lis", "lis", "m2", t0.Add(time.Minute), ""},
			{"other destination", "pacs", "m1", t0, ""},
		}
		for _, tt := range tests {
			got, err := s.NewerDelivered(ctx, key, tt.dest, tt.at, tt.msg)
			if err != nil || got != tt.want {
				t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
			}
		}
		if got, err := s.NewerDelivered(ctx, PatientKey(secret, "HOSP", "OTHER"), "lis", t0, "m1"); got != "" || err != nil {
			t.Errorf("other patient: %q %v", got, err)
		}
		if got, err := s.NewerDelivered(ctx, "", "lis", t0, "m1"); got != "" || err != nil {
			t.Errorf("no patient key: %q %v", got, err)
		}
	})
}

func TestRebuild(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "m1", "C1", t0), p.Audit(src("audit", 1), &canonical.AuditEvent{EventID: "e1", At: t0}))
		if g, err := s.ConsumerGroup(ctx); g != "" || err != nil {
			t.Fatalf("group before a rebuild %q %v", g, err)
		}
		if err := s.Rebuild(ctx, "hl7bus.index.r1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rebuild(ctx, "hl7bus.index.r2"); err != nil {
			t.Fatal(err)
		}
		if g, err := s.ConsumerGroup(ctx); g != "hl7bus.index.r2" || err != nil {
			t.Fatalf("group %q %v", g, err)
		}
		for _, table := range dataTables {
			var n int
			if err := s.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%s has %d rows after a rebuild (%v)", table, n, err)
			}
		}
		// The audit trail outlives the audit topic: a rebuild keeps it.
		var audits int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM audit_events`).Scan(&audits); err != nil || audits != 1 {
			t.Fatalf("audit_events has %d rows after a rebuild (%v), want the 1 it had", audits, err)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v < 2 {
			t.Fatalf("schema version %d %v after a rebuild", v, err)
		}
		if err := s.Rebuild(ctx, ""); err == nil {
			t.Fatal("rebuild without a group")
		}
	})
}
