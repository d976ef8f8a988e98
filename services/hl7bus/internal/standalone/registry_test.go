package standalone

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestSchemaIDsSurviveRestart registers every schema, restarts the
// registry on the same directory, and checks that the IDs are the same and
// old records still decode.
func TestSchemaIDsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topics := map[string]string{"hl7bus.raw": schemas.Raw, "hl7bus.parsed": schemas.Parsed,
		"hl7bus.out.lis": schemas.Out, "hl7bus.out.ris": schemas.Out, "hl7bus.dlq.parse": schemas.DeadLetter,
		"hl7bus.dlq.route": schemas.DeadLetter, "hl7bus.delivery": schemas.Delivery}
	serve := func() (*canonical.Serde, func()) {
		r, err := openRegistry(dir)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(r.handler())
		cl, err := sr.NewClient(sr.URLs(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		return canonical.NewSerde(cl), srv.Close
	}
	first, stop := serve()
	ids := map[string]int{}
	for topic, name := range topics {
		id, err := first.Register(ctx, topic, name)
		if err != nil {
			t.Fatal(err)
		}
		ids[topic] = id
	}
	if ids["hl7bus.out.lis"] != ids["hl7bus.out.ris"] {
		t.Errorf("the same schema under two subjects got two IDs")
	}
	old, err := first.Encode(&canonical.Out{MessageID: "M1", Destination: "lis", Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	stop()

	second, stop2 := serve()
	defer stop2()
	// A fresh process decodes old records by the ID they carry...
	rec, err := second.Decode(ctx, old)
	if err != nil || rec.(*canonical.Out).MessageID != "M1" {
		t.Fatalf("old record after restart: %v %v", rec, err)
	}
	// ...and registering again (every start does) returns the same IDs.
	for topic, name := range topics {
		id, err := second.Register(ctx, topic, name)
		if err != nil {
			t.Fatal(err)
		}
		if id != ids[topic] {
			t.Errorf("%s: schema ID %d after restart, was %d", topic, id, ids[topic])
		}
	}
	// A new subject after the restart gets a new, unused ID.
	id, err := second.Register(ctx, "hl7bus.transformed", schemas.Transformed)
	if err != nil {
		t.Fatal(err)
	}
	for topic, old := range ids {
		if old == id && topics[topic] != schemas.Transformed {
			t.Errorf("new schema reused ID %d of %s", id, topic)
		}
	}
}
