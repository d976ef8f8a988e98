package load

import (
	"bytes"
	"image/png"
	"strconv"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestControlID(t *testing.T) {
	id := ControlID("L123", 42, 7)
	run, p, s, ok := ParseControlID(id)
	if !ok || run != "L123" || p != 42 || s != 7 {
		t.Errorf("%q -> %q %d %d %v", id, run, p, s, ok)
	}
	for _, bad := range []string{"", "MSG00001", "L1-x-2", "L1-2"} {
		if _, _, _, ok := ParseControlID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestMake(t *testing.T) {
	c, err := LoadCorpus("../../corpus")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Make(0, "L9", 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	fac, _ := m.Get("MSH-4.1")
	pid, _ := m.Get("PID-3.1")
	if m.ControlID() != "L9-5-3" || fac != "LOADFAC" || pid != "P5" || hl7v2.PlanAck(m).Enhanced {
		t.Errorf("made %q", b)
	}
	c.WithAttachment(100)
	big, err := c.Make(1, "L9", 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := hl7v2.Parse(big)
	if err != nil || len(big) < 130*1024 {
		t.Fatalf("attachment: %d bytes, %v", len(big), err)
	}
	if v, _ := bm.Get("OBX[" + strconv.Itoa(bm.Count("OBX")) + "]-2"); v != "ED" {
		t.Errorf("the last OBX is not the ED attachment: %q", v)
	}
	if _, err := LoadCorpus(t.TempDir()); err == nil {
		t.Error("an empty corpus must be an error")
	}
}

func TestHistogramPercentiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	p := h.percentiles()
	if p.Count != 1000 || p.P50 < 499 || p.P50 > 501 || p.P99 < 989 || p.P99 > 991 || p.Max < 999 || p.Max > 1001 {
		t.Errorf("percentiles %+v", p)
	}
}

func TestPNG(t *testing.T) {
	r := &Report{Name: "t", TargetRate: 100, Connections: 2, Timeline: []Point{{0, 100, 100, 2}, {1, 100, 99, 5}, {2, 100, 100, 3}, {3, 10, 10, 1}}}
	var b bytes.Buffer
	if err := r.PNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil || img.Bounds().Dx() != 900 {
		t.Fatalf("%v %v", img, err)
	}
}
