// Package load generates HL7 load over MLLP, receives what the exchange
// delivers, and measures: ACK latency from each message's scheduled send
// time (so a stalled exchange cannot hide behind a slowed-down sender),
// end-to-end latency, loss, duplicates and per-patient order.
package load

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Corpus holds the message templates load is made from.
type Corpus struct {
	templates []*hl7v2.Message
	// attachment, when set, is an OBX carrying a base64 PDF (ED data
	// type) added to every message: large lab reports are a real load.
	attachment []byte
}

// WithAttachment makes every message carry a PDF of about kb kilobytes as
// OBX-5 (ED, base64).
func (c *Corpus) WithAttachment(kb int) {
	if kb <= 0 {
		c.attachment = nil
		return
	}
	pdf := make([]byte, kb*1024)
	copy(pdf, "%PDF-1.4\n% hl7load test attachment\n")
	for i := 40; i < len(pdf); i++ {
		pdf[i] = byte(i*7 + i/13) // deterministic, compresses poorly like a real PDF
	}
	c.attachment = []byte("OBX|99|ED|PDF^Report^L||^application^pdf^Base64^" + base64.StdEncoding.EncodeToString(pdf) + "||||||F")
}

// LoadCorpus reads every .hl7 file under dir (batches split). Messages that
// are acknowledgements are left out.
func LoadCorpus(dir string) (*Corpus, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.hl7"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	c := &Corpus{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := hl7v2.ParseBatch(data)
		if err != nil {
			continue // a corpus may hold deliberately bad files
		}
		for _, m := range file.Messages() {
			if !hl7v2.IsAck(m) {
				c.templates = append(c.templates, m)
			}
		}
	}
	if len(c.templates) == 0 {
		return nil, fmt.Errorf("corpus %s: no usable .hl7 messages", dir)
	}
	return c, nil
}

// Len returns the number of templates.
func (c *Corpus) Len() int { return len(c.templates) }

// ControlID encodes run, patient and the patient's sequence number into the
// MSH-10 of a generated message, so the receiver can check order and loss.
func ControlID(run string, patient, seq int) string {
	return run + "-" + strconv.Itoa(patient) + "-" + strconv.Itoa(seq)
}

// ParseControlID is the inverse of ControlID.
func ParseControlID(id string) (run string, patient, seq int, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 3 {
		return "", 0, 0, false
	}
	p, err1 := strconv.Atoi(parts[1])
	s, err2 := strconv.Atoi(parts[2])
	return parts[0], p, s, err1 == nil && err2 == nil
}

// Make returns the wire bytes of template i with a unique MSH-10 and the
// patient's identifier in PID-3, from one sending facility, so the
// exchange's ordering key (facility + patient) follows the patient.
func (c *Corpus) Make(i int, run string, patient, seq int) ([]byte, error) {
	t := c.templates[i%len(c.templates)]
	m, err := hl7v2.Parse(t.Bytes())
	if err != nil {
		return nil, err
	}
	if err := m.Set("MSH-10", ControlID(run, patient, seq)); err != nil {
		return nil, err
	}
	// Ask for an original-mode ACK: the generator measures one ACK per message.
	_ = m.Set("MSH-15", "")
	_ = m.Set("MSH-16", "")
	if err := m.Set("MSH-4.1", "LOADFAC"); err != nil {
		return nil, err
	}
	if m.Count("PID") > 0 {
		// A composite (ID ^^^ authority ^ type): raw, since Set would
		// escape the component separators.
		if err := m.SetRaw("PID-3", []byte("P"+strconv.Itoa(patient)+"^^^LOADFAC^MR")); err != nil {
			return nil, err
		}
	}
	out := m.Bytes()
	if c.attachment != nil {
		out = append(append(out, c.attachment...), '\r')
	}
	return out, nil
}
