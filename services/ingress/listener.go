package ingress

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// listener is one interface's server, whatever its protocol: Start binds
// the socket and calls Serve, Stop calls Shutdown. A protocol adapter
// (MLLP here; HTTP to come) builds one whose handler calls accept, and
// newListener is where it plugs in.
type listener interface {
	// Serve serves ln until Shutdown; it returns nil once shut down.
	Serve(ln net.Listener) error
	// Shutdown stops accepting and waits for the messages in flight.
	Shutdown(ctx context.Context) error
}

// listenerMetrics are the hooks Start gives a listener: readiness
// (accepting), the interface's open-connections gauge, and the counter of
// connections refused at once, by reason.
type listenerMetrics struct {
	accepting func(ok bool)
	open      prometheus.Gauge
	rejected  func(reason string)
}

// Protocols of an interface: the values interfaces[].protocol takes, each
// with a listener in newListener.
const (
	ProtocolMLLP = "mllp"
)

// protocols lists the supported protocols, for Validate's error.
var protocols = []string{ProtocolMLLP}

// newListener builds interface it's listener for its protocol: the one
// place a protocol plugs into ingress (an HTTP listener is one case more,
// in a file of its own, whose handler builds a Receipt and calls accept).
func (s *Service) newListener(it Interface, m listenerMetrics) (listener, error) {
	switch it.Protocol {
	case ProtocolMLLP:
		return s.newMLLPListener(it, m), nil
	}
	return nil, fmt.Errorf("ingress: interfaces %s: protocol %q is not supported", it.Name, it.Protocol)
}
