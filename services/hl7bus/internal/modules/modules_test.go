package modules

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

func noop(*config.File, Deps) (Service, error) { return nil, nil }

func TestDefaultRegistry(t *testing.T) {
	r := Default()
	want := []string{"broker", "registry", "ingress", "parse", "transform", "route", "egress", "index", "admin"}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Fatalf("modules %v, want %v", got, want)
	}
	for _, m := range r.Modules() {
		if m.Summary == "" {
			t.Errorf("%s has no summary", m.Name)
		}
		if m.Embedded != (m.Name == "broker" || m.Name == "registry") {
			t.Errorf("%s: embedded %v", m.Name, m.Embedded)
		}
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		targets string
		want    []string
		err     string // substring; "" for none
	}{
		{"all by default", "", []string{"broker", "registry", "ingress", "parse", "transform", "route", "egress", "index", "admin"}, ""},
		{"broker only", "broker,registry", []string{"broker", "registry"}, ""},
		{"dependencies added, order kept", "egress, parse", []string{"broker", "registry", "parse", "egress"}, ""},
		{"order of the table, not of the flag", "registry,broker", []string{"broker", "registry"}, ""},
		{"named twice", "parse,parse", []string{"broker", "registry", "parse"}, ""},
		{"unknown", "broker,brokr,idx", nil, `unknown target "brokr", "idx" (valid: broker, registry, ingress, parse, transform, route, egress, index, admin)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods, err := Default().Resolve(ParseTargets(tt.targets))
			if tt.err != "" {
				if !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("resolved %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRegistryRefusesABadTable(t *testing.T) {
	tests := []struct {
		name string
		mods []Module
		err  string
	}{
		{"twice", []Module{{Name: "a", New: noop}, {Name: "a", New: noop}}, `"a" is declared twice`},
		{"dependency after", []Module{{Name: "a", Deps: []string{"b"}, New: noop}, {Name: "b", New: noop}}, `"a" depends on "b", which is not declared before it`},
		{"unknown dependency", []Module{{Name: "a", Deps: []string{"x"}, New: noop}}, `"a" depends on "x"`},
		{"self", []Module{{Name: "a", Deps: []string{"a"}, New: noop}}, `"a" depends on "a"`},
		{"no constructor", []Module{{Name: "a"}}, "no constructor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry(tt.mods...)
			if !errors.Is(err, ErrBadRegistry) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func TestWriteList(t *testing.T) {
	var b bytes.Buffer
	if err := Default().WriteList(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want a header and 9 modules:\n%s", len(lines), b.String())
	}
	want := map[string][]string{
		"MODULE":    {"DEPENDS", "ON", "INPUT", "OUTPUTS"},
		"broker":    {"-", "-", "-"},
		"ingress":   {"broker,registry", "-", "raw"},
		"parse":     {"broker,registry", "raw", "parsed,dlq.parse"},
		"route":     {"broker,registry", "transformed", "out.<destination>,decisions,dlq.route"},
		"egress":    {"broker,registry", "out.<destination>", "delivery,dlq.egress"},
		"transform": {"broker,registry", "parsed", "transformed,decisions,dlq.transform"},
		"index":     {"broker,registry", "raw", "-"},
		"admin":     {"broker,registry", "replay", "audit,control,replay"},
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if w, ok := want[f[0]]; ok && !slices.Equal(f[1:], w) {
			t.Errorf("line %q, want %s %v", l, f[0], w)
		}
		delete(want, f[0])
	}
	if len(want) > 0 {
		t.Errorf("missing lines for %v:\n%s", want, b.String())
	}
}
