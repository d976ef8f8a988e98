package hl7v2

import (
	"errors"
	"strings"
	"testing"
)

const (
	fhs = `FHS|^~\&|A|B|C|D|20240101`
	bhs = `BHS|^~\&|A|B|C|D|20240101`
	m1  = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1"
	m2  = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|2|P|2.5\rPID|2"
)

func TestParseBatch(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		batches []int // messages per batch
	}{
		{"single message", []string{m1}, []int{1}},
		{"messages without envelope", []string{m1, m2}, []int{2}},
		{"batch", []string{bhs, m1, m2, "BTS|2"}, []int{2}},
		{"batch without count", []string{bhs, m1, "BTS"}, []int{1}},
		{"batch without trailer", []string{bhs, m1}, []int{1}},
		{"batch without header", []string{m1, "BTS|1"}, []int{1}},
		{"empty batch", []string{bhs, "BTS|0"}, []int{0}},
		{"empty batch, no header", []string{"BTS|0"}, []int{0}},
		{"file", []string{fhs, bhs, m1, "BTS|1", bhs, m2, "BTS|1", "FTS|2"}, []int{1, 1}},
		{"file without batch headers", []string{fhs, m1, m2, "FTS|1"}, []int{2}},
		{"file, FTS closes open batch", []string{fhs, bhs, m1, "FTS|1"}, []int{1}},
		{"empty file", []string{fhs, "FTS|0"}, nil},
		{"batch with different delimiters", []string{`BHS!@#$%!A`, m1, "BTS!1"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseBatch(msg(tt.in...))
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, b := range f.Batches {
				got = append(got, len(b.Messages))
			}
			if len(got) != len(tt.batches) {
				t.Fatalf("batches = %v, want %v", got, tt.batches)
			}
			for i := range got {
				if got[i] != tt.batches[i] {
					t.Fatalf("batches = %v, want %v", got, tt.batches)
				}
			}
			if string(f.Bytes()) != string(msg(tt.in...)) {
				t.Errorf("round trip: %q", f.Bytes())
			}
		})
	}
}

func TestParseBatchErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want error
		text string
	}{
		{"segment before MSH", []string{bhs, "EVN|A04", m1, "BTS|1"}, ErrBatch, "EVN segment outside a message"},
		{"nested BHS", []string{bhs, m1, bhs, m2, "BTS|1"}, ErrBatch, "BHS inside a batch"},
		{"FHS not first", []string{m1, fhs, "FTS|0"}, ErrBatch, "FHS is not the first"},
		{"nested FHS", []string{fhs, bhs, m1, fhs}, ErrBatch, "FHS is not the first"},
		{"after FTS", []string{fhs, m1, "FTS|1", m2}, ErrBatch, "after FTS"},
		{"BTS count", []string{bhs, m1, m2, "BTS|3"}, ErrBatch, "BTS-1 batch message count does not match: there are 2 messages"},
		{"BTS count not a number", []string{bhs, m1, "BTS|two"}, ErrBatch, "not a number"},
		{"FTS count", []string{fhs, bhs, m1, "BTS|1", "FTS|2"}, ErrBatch, "FTS-1 file batch count does not match: there are 1 batches"},
		{"bad message inside", []string{bhs, m1, "MSH|^~|A", "BTS|2"}, ErrDelimiters, "message 2 of batch 1"},
		{"bad BHS delimiters", []string{`BHS|^^\&|A`, m1}, ErrDelimiters, ""},
		{"bad segment name", []string{m1, "pid|1"}, ErrSegmentName, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBatch(msg(tt.in...))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.want, tt.text)
			}
		})
	}
}
