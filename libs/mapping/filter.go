package mapping

import "github.com/hl7bus/hl7bus/libs/hl7v2"

// filterOp drops the message (for a destination's rules, that
// destination's copy) when its rule's when holds; a filter without when
// drops everything, which is how a destination is paused.
type filterOp struct {
	reason string
}

// defaultFilterReason is the reason of a filter that gives none, so a
// decision record never has an empty one.
const defaultFilterReason = "filtered"

func compileFilter(s *FilterOp) op {
	if s.Reason == "" {
		return &filterOp{reason: defaultFilterReason}
	}
	return &filterOp{reason: s.Reason}
}

// apply is never called: Apply handles filter itself, since it drops the
// message.
func (o *filterOp) apply(*run, *hl7v2.Message) error { return nil }
