package ingress

import (
	"context"

	"github.com/hl7bus/hl7bus/libs/mllp"
)

// mllpHandler adapts accept to an MLLP listener of interface it: one frame
// in, the reply (or none) out.
func (s *Service) mllpHandler(it Interface) mllp.Handler {
	return mllp.HandlerFunc(func(ctx context.Context, conn mllp.ConnInfo, frame []byte) ([]byte, error) {
		rc := Receipt{Interface: it, Protocol: "mllp", Peer: conn.RemoteAddr.String(), Payload: frame}
		if conn.TLS != nil && len(conn.TLS.PeerCertificates) > 0 {
			rc.TLSIdentity = conn.TLS.PeerCertificates[0].Subject.String()
		}
		reply, _ := s.accept(ctx, rc)
		return reply, nil
	})
}
