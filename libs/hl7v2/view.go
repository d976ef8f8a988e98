package hl7v2

// The JSON view is what `hl7bus inspect` prints and what the golden files
// hold. Its shape keeps every level distinguishable without a schema:
//
//	"text"                      a leaf value (decoded)
//	["a", "b"]                  components (field or repetition level)
//	["a", ["s1", "s2"]]         a component with subcomponents
//	{"repetitions": [ ... ]}    a field with more than one repetition
//
// An empty field is "", the explicit null is "\"\"" (the two characters) and
// fields past the last one present are left out.

// SegmentView is the JSON view of one segment.
type SegmentView struct {
	Segment string `json:"segment"`
	// Fields[i] is field i+1 (for MSH, Fields[0] is MSH-1).
	Fields []any `json:"fields"`
}

// HeaderView summarises MSH for people and tools.
type HeaderView struct {
	SendingApplication   string `json:"sending_application"`
	SendingFacility      string `json:"sending_facility"`
	ReceivingApplication string `json:"receiving_application"`
	ReceivingFacility    string `json:"receiving_facility"`
	DateTime             string `json:"date_time"`
	MessageCode          string `json:"message_code"`
	TriggerEvent         string `json:"trigger_event"`
	MessageStructure     string `json:"message_structure"`
	ControlID            string `json:"control_id"`
	ProcessingID         string `json:"processing_id"`
	Version              string `json:"version"`
	Charset              string `json:"charset"`
	Delimiters           string `json:"delimiters"`
}

// HeaderView returns the MSH summary.
func (m *Message) HeaderView() HeaderView {
	code, trig, st := m.Type()
	return HeaderView{
		SendingApplication:   m.Header(3),
		SendingFacility:      m.Header(4),
		ReceivingApplication: m.Header(5),
		ReceivingFacility:    m.Header(6),
		DateTime:             m.Header(7),
		MessageCode:          code,
		TriggerEvent:         trig,
		MessageStructure:     st,
		ControlID:            m.ControlID(),
		ProcessingID:         m.Header(11),
		Version:              m.Version(),
		Charset:              m.c.charset.Used,
		Delimiters:           m.c.d.String(),
	}
}

// View returns the JSON view of every segment.
func (m *Message) View() []SegmentView {
	out := make([]SegmentView, len(m.segs))
	for i, s := range m.segs {
		out[i] = s.View()
	}
	return out
}

// View returns the JSON view of the segment.
func (s Segment) View() SegmentView {
	v := SegmentView{Segment: s.Name(), Fields: make([]any, s.NumFields())}
	for i := range v.Fields {
		v.Fields[i] = s.Field(i + 1).view()
	}
	return v
}

func (v Value) view() any {
	switch v.depth {
	case depthLiteral, depthSub:
		return v.String()
	case depthField:
		if v.NumReps() > 1 {
			reps := make([]any, v.NumReps())
			for i := range reps {
				reps[i] = v.Rep(i + 1).view()
			}
			return map[string]any{"repetitions": reps}
		}
		return v.Rep(1).view()
	}
	if !v.HasStructure() {
		return v.String()
	}
	var n int
	var next func(int) Value
	if v.depth == depthRep {
		n, next = v.NumComps(), v.Comp
	} else {
		n, next = v.NumSubs(), v.Sub
	}
	parts := make([]any, n)
	for i := range parts {
		parts[i] = next(i + 1).view()
	}
	return parts
}
