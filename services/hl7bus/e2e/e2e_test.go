// Package e2e runs the whole pipeline in-process against the embedded
// broker and registry.
package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// receiver is an MLLP destination that records what it gets and ACKs.
type receiver struct {
	mu   sync.Mutex
	got  [][]byte
	addr string
	srv  *mllp.Server
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, f []byte) ([]byte, error) {
		m, err := hl7v2.Parse(f)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.got = append(r.got, f)
		r.mu.Unlock()
		ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: hl7v2.AckAccept, ControlID: "R" + m.ControlID()})
		if err != nil {
			return nil, err
		}
		return ack.Bytes(), nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Shutdown(context.Background()) })
	return r
}

func (r *receiver) messages() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

// message builds a test message for patient p, sequence n.
func message(kind string, p, n int) string {
	ctl := fmt.Sprintf("C%03d-%04d", p, n)
	switch kind {
	case "ORU":
		return fmt.Sprintf("MSH|^~\\&|LIS|GENHOSP|HIS|GENHOSP|20240301101500+0100||ORU^R01^ORU_R01|%s|P|2.5.1\r"+
			"PID|1||P%03d^^^GENHOSP^MR||DOE^PAT%d||19800101|F\rOBR|1||L%d|GLU^Glucose\rOBX|1|NM|GLU^Glucose||%d.%d|mmol/L|||||F\r", ctl, p, p, n, 4+n%3, n%10)
	case "VXU":
		return fmt.Sprintf("MSH|^~\\&|EHR|GENHOSP|IIS|NIR|20240301101500||VXU^V04^VXU_V04|%s|P|2.5.1\r"+
			"PID|1||P%03d^^^GENHOSP^MR||DOE^PAT%d||20200101|M\rORC|RE||V%d\rRXA|0|1|20240301||08^HepB^CVX|0.5|mL\r", ctl, p, p, n)
	}
	return fmt.Sprintf("MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301101500||ADT^A0%d^ADT_A01|%s|P|2.5\r"+
		"EVN|A0%d|20240301101500\rPID|1||P%03d^^^GENHOSP^MR||DOE^PAT%d||19800101|F\rPV1|1|I\r", 1+n%3, ctl, 1+n%3, p, p)
}

func TestPipelineEndToEnd(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	recv := startReceiver(t)
	spans := tracetest.NewSpanRecorder()
	tel := telemetry.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))

	in := startPipeline(t, ctx, env, pipeline{Interface: "adt-in", Telemetry: tel,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: recv.addr,
			Retry: egress.Retry{InitialBackoff: 50 * time.Millisecond}}}})

	// Eight senders, each owning five patients, 240 messages of three types.
	sent := sendAll(t, ctx, in.Addr("adt-in"), 8, 5, 6)
	sendMalformed(t, ctx, in.Addr("adt-in"))
	checkDelivered(t, recv, sent, 90*time.Second)

	checkTraces(t, spans, env.Kafka, len(sent))
	checkMetrics(t, tel, len(sent))

	// The malformed message left a dead letter with the reason.
	dead := deadLetters(t, ctx, env.Kafka.Brokers, env.Serde, env.Kafka.DLQTopic("parse"), 1)
	if len(dead) != 1 || !strings.Contains(dead[0].Reason, "does not start with MSH") || dead[0].Stage != "parse" {
		t.Fatalf("dead letters: %+v", dead)
	}
}
