package transform

import (
	"testing"

	"github.com/hl7bus/hl7bus/libs/kafka"
)

// TestSetRules: the rules of Config are in force until SetRules swaps
// them whole.
func TestSetRules(t *testing.T) {
	first, second := &Rules{Version: "aaaaaaaaaaaa"}, &Rules{Version: "bbbbbbbbbbbb"}
	s := New(Config{Rules: first}, kafka.Config{}, nil, nil)
	if s.CurrentRules() != first {
		t.Fatalf("rules in force %+v, want Config.Rules", s.CurrentRules())
	}
	s.SetRules(second)
	if s.CurrentRules() != second {
		t.Fatalf("rules in force %+v after SetRules, want %+v", s.CurrentRules(), second)
	}
}
