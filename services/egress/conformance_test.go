package egress_test

import (
	"log/slog"
	"testing"

	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/egress/egresstest"
)

// The MLLP sender keeps the contract every sender must (sender.go).
func TestMLLPSenderConformance(t *testing.T) {
	egresstest.Run(t, func(t egresstest.T, s egresstest.Settings) (egress.Sender, egresstest.Peer) {
		p := egresstest.NewMLLPPeer(t)
		d := egress.Destination{Name: "conformance", Address: p.Addr(), AckTimeout: s.AckTimeout}.WithDefaults()
		snd, err := egress.MLLP().NewSender(d, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("mllp sender: %v", err)
		}
		return snd, p
	})
}
