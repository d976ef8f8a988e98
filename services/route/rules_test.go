package route

import (
	"slices"
	"testing"

	"github.com/hl7bus/hl7bus/libs/kafka"
)

// TestSetRules: nothing is in force until SetRules, then what it swapped
// in, whole.
func TestSetRules(t *testing.T) {
	s := New(Config{}, kafka.Config{}, nil, nil)
	if s.CurrentRules() != nil {
		t.Fatal("rules in force before SetRules")
	}
	r := &Rules{Version: "aaaaaaaaaaaa"}
	s.SetRules(r)
	if s.CurrentRules() != r {
		t.Fatalf("rules in force %+v, want %+v", s.CurrentRules(), r)
	}
}

// TestDestinationsAll: the stage declares an out topic for every
// configured destination, not only those the routes name today, so a
// reloaded route may use any of them.
func TestDestinationsAll(t *testing.T) {
	c := Config{Rules: []Rule{{Name: "r", Destinations: []string{"lis"}}}, AllDestinations: []string{"registry", "lis"}}
	if got := c.Destinations(); !slices.Equal(got, []string{"lis", "registry"}) {
		t.Errorf("destinations %v", got)
	}
}
