package hl7v2

import (
	"os"
	"path/filepath"
	"testing"
)

// benchInputs returns the 2 KB ORU^R01 and, when ../shared is present, every
// FHIR-Converter message concatenated as separate inputs.
func benchInputs(b *testing.B) map[string][][]byte {
	oru, err := os.ReadFile("testdata/oru_r01_2k.hl7")
	if err != nil {
		b.Fatal(err)
	}
	in := map[string][][]byte{"ORU_R01_2KB": {oru}}
	files, _ := filepath.Glob("../../../shared/corpus/fhir-converter/hl7v2/*.hl7")
	var corpus [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if m, err := Parse(data); err == nil {
			corpus = append(corpus, m.Bytes())
		}
	}
	if len(corpus) > 0 {
		in["FHIRConverterCorpus"] = corpus
	}
	return in
}

func totalBytes(msgs [][]byte) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m))
	}
	return n
}

// run reports MB/s over the inputs and messages per second as msgs/s.
func run(b *testing.B, msgs [][]byte, f func([]byte)) {
	b.SetBytes(totalBytes(msgs) / int64(len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f(msgs[i%len(msgs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkParse(b *testing.B) {
	for name, msgs := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			run(b, msgs, func(m []byte) {
				if _, err := Parse(m); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkParseValidate(b *testing.B) {
	for name, msgs := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			run(b, msgs, func(m []byte) {
				msg, err := Parse(m)
				if err != nil {
					b.Fatal(err)
				}
				_ = Validate(msg)
			})
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for name, msgs := range benchInputs(b) {
		parsed := make([]*Message, len(msgs))
		for i, m := range msgs {
			parsed[i], _ = Parse(m)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(totalBytes(msgs) / int64(len(msgs)))
			b.ReportAllocs()
			buf := make([]byte, 0, 64<<10)
			for i := 0; i < b.N; i++ {
				buf = parsed[i%len(parsed)].AppendTo(buf[:0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkBuildACK(b *testing.B) {
	for name, msgs := range benchInputs(b) {
		var parsed []*Message
		for _, m := range msgs {
			if p, _ := Parse(m); !IsAck(p) {
				parsed = append(parsed, p)
			}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := BuildACK(parsed[i%len(parsed)], AckSpec{Code: AckAccept, ControlID: "01HZX3V5K8N6Q2W4E7R9T1Y3U5"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
