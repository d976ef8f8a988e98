package canonical

import (
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Ordering modes of an interface: what the Kafka key is, and so what order
// is kept. Ingress keys raw records by them and records the mode in
// Raw.Ordering, so parse can key the messages of a batch the same way.
const (
	OrderPatient   = "patient"   // sending facility + first PID-3 with its authority (default)
	OrderInterface = "interface" // one key per interface: strict FIFO
	OrderNone      = "none"      // the message ID: no order, most parallelism
)

// OrderingKey computes the Kafka key of message m, whose message ID is id,
// received on interface iface whose ordering mode is mode ("" means
// OrderPatient). m may be nil when nothing of the message could be read:
// the key is then the interface's, so such frames at least keep their
// arrival order.
func OrderingKey(mode, iface string, m *hl7v2.Message, id string) string {
	switch {
	case mode == OrderInterface || m == nil:
		return "interface:" + iface
	case mode == OrderNone:
		return id
	}
	fac := strings.TrimSpace(m.MSH().Field(4).Comp(1).String())
	pid, ok := m.Segment("PID", 1)
	if !ok {
		return fac + "|"
	}
	cx := pid.Field(3).Rep(1)
	return fac + "|" + strings.TrimSpace(cx.Comp(1).String()) + "^" + strings.TrimSpace(cx.Comp(4).Sub(1).String())
}
