package cli

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

func TestSend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, f []byte) ([]byte, error) {
		m, err := hl7v2.Parse(f)
		if err != nil {
			stub, _ := hl7v2.Parse([]byte("MSH|^~\\&|||||1||X^X|1|P|2.5\r"))
			ack, _ := hl7v2.BuildACK(stub, hl7v2.AckSpec{Code: hl7v2.AckReject})
			return ack.Bytes(), nil
		}
		code := hl7v2.AckAccept
		if m.ControlID() == "B1M2" {
			code = hl7v2.AckError
		}
		ack, _ := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: code})
		return ack.Bytes(), nil
	}))
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())
	addr := ln.Addr().String()

	code, out, _ := run(t, "", "send", addr, "testdata/adt_a01_basic.hl7")
	if code != 0 || !strings.HasPrefix(out, "testdata/adt_a01_basic.hl7\tAA\tMSG00001\t") {
		t.Errorf("accepted: %d %q", code, out)
	}
	code, out, _ = run(t, "", "send", addr, "testdata/batch_file.hl7")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 2 || !strings.Contains(lines[1], "\tAE\tB1M2\t") {
		t.Errorf("batch with an AE: %d %q", code, out)
	}
	code, _, errb := run(t, "", "send", addr, "testdata/no_msh.hl7")
	if code != 1 || !strings.Contains(errb, "--raw") {
		t.Errorf("unparseable file: %d %q", code, errb)
	}
	code, out, _ = run(t, "", "send", "--raw", addr, "testdata/no_msh.hl7")
	if code != 1 || !strings.Contains(out, "\tAR\t") {
		t.Errorf("--raw: %d %q", code, out)
	}
	if code, _, _ := run(t, "", "send", addr); code != 2 {
		t.Errorf("no file: %d", code)
	}
}
