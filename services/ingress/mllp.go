package ingress

import (
	"context"
	"errors"
	"net"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// newMLLPListener builds the MLLP listener of interface it: each frame goes
// to accept, an oversize frame gets oversizeReply's AR without reaching
// it, and a frame accept panicked on gets panicReply's AE.
func (s *Service) newMLLPListener(it Interface, m listenerMetrics) listener {
	return mllpListener{mllp.NewServer(s.mllpHandler(it), mllp.WithMaxFrameSize(it.MaxMessageSize),
		mllp.WithMaxConnections(it.MaxConnections), mllp.WithIdleTimeout(it.IdleTimeout), mllp.WithReadTimeout(it.ReadTimeout),
		mllp.WithOversizeReply(s.oversizeReply(it)), mllp.WithPanicReply(s.panicReply(it)),
		mllp.WithAcceptState(m.accepting),
		mllp.WithConnEvents(mllp.ConnEvents{Opened: m.open.Inc, Closed: m.open.Dec, Rejected: m.rejected}),
		mllp.WithLogger(s.log.With(logattr.Interface(it.Name))))}
}

// mllpListener makes an mllp.Server a listener.
type mllpListener struct{ *mllp.Server }

// Serve serves ln; mllp.ErrClosed, the end of a shutdown, is no error.
func (l mllpListener) Serve(ln net.Listener) error {
	if err := l.Server.Serve(ln); err != nil && !errors.Is(err, mllp.ErrClosed) {
		return err
	}
	return nil
}

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
