package index

import "testing"

func TestMerge(t *testing.T) {
	const t0, t1, t2 = 100, 200, 300
	tests := []struct {
		name        string
		cur         string
		cycleAt     int64
		next        string
		at          int64
		want        string
		wantCycleAt int64
		changed     bool
	}{
		{"first event", "", 0, StatusReceived, t0, StatusReceived, 0, true},
		{"forward", StatusReceived, 0, StatusParsed, t1, StatusParsed, 0, true},
		{"late parsed never overwrites delivered", StatusDelivered, 0, StatusParsed, t0, StatusDelivered, 0, false},
		{"late received never overwrites routed", StatusRouted, 0, StatusReceived, t2, StatusRouted, 0, false},
		{"ack_error after delivered is stale", StatusDelivered, 0, StatusAckError, t2, StatusDelivered, 0, false},
		{"delivered after ack_error", StatusAckError, 0, StatusDelivered, t2, StatusDelivered, 0, true},
		{"tie keeps the stored", StatusDeadLettered, 0, StatusFiltered, t2, StatusDeadLettered, 0, false},
		// An AR is told twice, by the delivery (rejected) and by the dead
		// letter (dead_lettered): either order ends rejected.
		{"rejected after dead_lettered", StatusDeadLettered, 0, StatusRejected, t1, StatusRejected, 0, true},
		{"dead_lettered after rejected", StatusRejected, 0, StatusDeadLettered, t1, StatusRejected, 0, false},
		{"same event twice", StatusDelivered, 0, StatusDelivered, t1, StatusDelivered, 0, false},
		{"replay opens a cycle", StatusDeadLettered, 0, StatusReplayed, t1, StatusReplayed, t1, true},
		{"replay of a first event", "", 0, StatusReplayed, t1, StatusReplayed, t1, true},
		{"in the new cycle dead_lettered again", StatusReplayed, t1, StatusDeadLettered, t2, StatusDeadLettered, t1, true},
		{"record from before the replay is ignored", StatusReplayed, t1, StatusDelivered, t0, StatusReplayed, t1, false},
		{"older replay is ignored", StatusDelivered, t2, StatusReplayed, t1, StatusDelivered, t2, false},
		{"same replay twice", StatusReplayed, t1, StatusReplayed, t1, StatusReplayed, t1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cyc, changed := merge(tt.cur, tt.cycleAt, tt.next, tt.at)
			if got != tt.want || cyc != tt.wantCycleAt || changed != tt.changed {
				t.Errorf("merge(%q, %d, %q, %d) = %q, %d, %v; want %q, %d, %v",
					tt.cur, tt.cycleAt, tt.next, tt.at, got, cyc, changed, tt.want, tt.wantCycleAt, tt.changed)
			}
		})
	}
}

func TestPrecedenceCoversEveryStoredStatus(t *testing.T) {
	for _, s := range []string{StatusReceived, StatusParsed, StatusFiltered, StatusRouted, StatusDelivered,
		StatusAckError, StatusRejected, StatusDeadLettered, StatusReplayed} {
		if _, ok := precedence[s]; !ok {
			t.Errorf("%s has no precedence", s)
		}
	}
	if _, ok := precedence[StatusPartiallyDelivered]; ok {
		t.Error("partially_delivered is derived, never stored: it must not have a precedence")
	}
	if !Known(StatusPartiallyDelivered) || Known("Delivered") || Known("") {
		t.Error("Known: wrong answer")
	}
}

func TestOverall(t *testing.T) {
	tests := []struct {
		stage string
		dests []string
		want  string
	}{
		{StatusReceived, nil, StatusReceived},
		{StatusRejected, nil, StatusRejected},
		{StatusRouted, nil, StatusRouted},
		{StatusRouted, []string{StatusDelivered, StatusDelivered}, StatusDelivered},
		{StatusRouted, []string{StatusDelivered, StatusFiltered}, StatusDelivered},
		{StatusRouted, []string{StatusFiltered, StatusFiltered}, StatusFiltered},
		{StatusRouted, []string{StatusDelivered, StatusDeadLettered}, StatusPartiallyDelivered},
		{StatusRouted, []string{StatusDelivered, StatusRejected}, StatusPartiallyDelivered},
		{StatusRouted, []string{StatusRejected, StatusRejected}, StatusRejected},
		{StatusRouted, []string{StatusRejected, StatusDeadLettered}, StatusDeadLettered},
		{StatusRouted, []string{StatusDelivered, StatusRouted}, StatusRouted},
		{StatusRouted, []string{StatusDelivered, StatusAckError, StatusReplayed}, StatusAckError},
		{StatusRouted, []string{StatusDelivered, StatusReplayed}, StatusReplayed},
	}
	for _, tt := range tests {
		if got := Overall(tt.stage, tt.dests); got != tt.want {
			t.Errorf("Overall(%q, %v) = %q, want %q", tt.stage, tt.dests, got, tt.want)
		}
	}
}
