package hl7v2

import (
	"bytes"
	"testing"
)

func TestUnescape(t *testing.T) {
	d := DefaultDelimiters
	d27 := d
	d27.Truncation = '#'
	tests := []struct {
		name, in, want string
		d              Delimiters
	}{
		{"none", "plain", "plain", d},
		{"delimiters", `a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`, d},
		{"hex", `\X41\\X4243\`, "ABC", d},
		{"hex lower", `\X6a\`, "j", d},
		{"truncation v2.7", `x\P\y`, "x#y", d27},
		{"P without truncation char kept", `x\P\y`, `x\P\y`, d},
		{"formatting kept", `\H\b\N\ \.br\ \.sp2\ \.in+4\`, `\H\b\N\ \.br\ \.sp2\ \.in+4\`, d},
		{"charset escapes kept", `\C2842\ \M2442\`, `\C2842\ \M2442\`, d},
		{"local kept", `\Zabc\`, `\Zabc\`, d},
		{"odd hex kept", `\X4\`, `\X4\`, d},
		{"bad hex kept", `\XZZ\`, `\XZZ\`, d},
		{"unknown kept", `\Q\`, `\Q\`, d},
		{"empty sequence kept", `a\\b`, `a\\b`, d},
		{"unclosed kept", `a\F`, `a\F`, d},
		{"other escape char", `a!F!b`, "a|b", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '!', Subcomponent: '&'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Unescape([]byte(tt.in), tt.d)); got != tt.want {
				t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	d := DefaultDelimiters
	d.Truncation = '#'
	for _, s := range []string{"", "plain", `|^~\&#`, "a\rb\nc", `\F\ literal`, "ünïcødé"} {
		esc := Escape([]byte(s), d)
		for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Subcomponent, d.Truncation, '\r', '\n'} {
			if bytes.IndexByte(esc, c) >= 0 {
				t.Errorf("Escape(%q) = %q still holds %q", s, esc, c)
			}
		}
		if got := string(Unescape(esc, d)); got != s {
			t.Errorf("round trip %q -> %q -> %q", s, esc, got)
		}
	}
}

func TestMalformedEscape(t *testing.T) {
	d := DefaultDelimiters
	tests := map[string]string{
		`fine \F\ \.br\ \H\ \X41\ \C2842\ \Zx\`: "",
		`bad \X4\ here`:                         `\X4\`,
		`unknown \Q\`:                           `\Q\`,
		`empty \\`:                              `\\`,
		`unclosed \F`:                           `\F`,
		`\P\ without truncation`:                `\P\`,
	}
	for in, want := range tests {
		if got := MalformedEscape([]byte(in), d); got != want {
			t.Errorf("MalformedEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
