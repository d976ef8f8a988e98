package ingress

import (
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestRejectOversize(t *testing.T) {
	tests := []struct {
		name     string
		head     string
		code     string // "" when no reply is owed
		msa2     string
		version  string
		msgType  string
		ackLabel string
	}{
		{"original mode", "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ORU^R01^ORU_R01|BIG1|P|2.5\rOBX|1|ED|PDF||AAAA",
			hl7v2.AckReject, "BIG1", "2.5", "ORU^R01", "AR"},
		{"enhanced mode", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X9|P|2.5|||AL|NE\rPID|1|trunc",
			hl7v2.AckCommitReject, "X9", "2.5", "ADT^A01", "CR"},
		{"pre-2.5 keeps the text in MSA-3", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|OLD1|P|2.3\rPID|1",
			hl7v2.AckReject, "OLD1", "2.3", "ADT^A01", "AR"},
		{"other delimiters", "MSH#$%\\&#A#B#C#D#20240101##ADT$A01#D2#P#2.5\rPID#1",
			hl7v2.AckReject, "D2", "2.5", "ADT^A01", "AR"},
		{"an MSA after the MSH does not make it an ACK", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|M1|P|2.5\rMSA|AA|X\rPID|1",
			hl7v2.AckReject, "M1", "2.5", "ADT^A01", "AR"},
		{"no MSH", "EVN|A01\rPID|1||123^^^H^MR||DOE\rNTE|1||xxxx",
			hl7v2.AckReject, "", "2.5", "unknown", "AR"},
		{"binary junk", "\x00\x01\xff\xfe",
			hl7v2.AckReject, "", "2.5", "unknown", "AR"},
		{"MSH cut off by the head", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|" + strings.Repeat("9", 5000),
			hl7v2.AckReject, "", "2.5", "unknown", "AR"},
		{"an acknowledgement is never acknowledged", "MSH|^~\\&|A|B|C|D|1||ACK^A01|1|P|2.5\rMSA|AA|1\r",
			"", "", "", "ACK^A01", "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, msgType, label := rejectOversize([]byte(tt.head), 65536, "01HACKID")
			if msgType != tt.msgType || label != tt.ackLabel {
				t.Errorf("labels %q %q, want %q %q", msgType, label, tt.msgType, tt.ackLabel)
			}
			if tt.code == "" {
				if reply != nil {
					t.Errorf("reply %q, want none", reply)
				}
				return
			}
			a, err := hl7v2.ParseACK(reply)
			if err != nil {
				t.Fatalf("reply %q: %v", reply, err)
			}
			if a.Code != tt.code || a.ControlID != tt.msa2 {
				t.Errorf("MSA %s %q, want %s %q", a.Code, a.ControlID, tt.code, tt.msa2)
			}
			if !strings.Contains(a.Text, "message exceeds the maximum size of 65536 bytes") {
				t.Errorf("text %q does not name the limit", a.Text)
			}
			if v := a.Message.Version(); v != tt.version {
				t.Errorf("ACK version %q, want %q", v, tt.version)
			}
			if got := a.Message.ControlID(); got != "01HACKID" {
				t.Errorf("ACK MSH-10 %q, want its own ID", got)
			}
			if code, _, _ := a.Message.Type(); code != "ACK" {
				t.Errorf("ACK MSH-9 %q", code)
			}
		})
	}
}

func TestInterfaceWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Interface
		size int
	}{
		{"unset", Interface{}, 16 << 20},
		{"max_message_size", Interface{MaxMessageSize: 4096}, 4096},
		{"max_frame_size alias", Interface{MaxFrameSize: 8192}, 8192},
		{"both, equal", Interface{MaxMessageSize: 100, MaxFrameSize: 100}, 100},
	}
	for _, tt := range tests {
		got := tt.in.WithDefaults()
		if got.MaxMessageSize != tt.size || got.MaxFrameSize != 0 {
			t.Errorf("%s: size %d (alias %d), want %d", tt.name, got.MaxMessageSize, got.MaxFrameSize, tt.size)
		}
		if got.MaxConnections != 1000 || got.IdleTimeout != DefaultIdleTimeout || got.ReadTimeout != DefaultReadTimeout {
			t.Errorf("%s: defaults %+v", tt.name, got)
		}
	}
}

func TestValidateListenerSettings(t *testing.T) {
	base := Interface{Name: "in", Protocol: "mllp", Address: "127.0.0.1:2575"}
	tests := []struct {
		name string
		mod  func(*Interface)
		want string // "" for valid
	}{
		{"defaults", func(*Interface) {}, ""},
		{"all set", func(i *Interface) {
			i.MaxMessageSize, i.MaxConnections, i.IdleTimeout, i.ReadTimeout = 1<<20, 50, DefaultIdleTimeout, 2*DefaultReadTimeout
		}, ""},
		{"alias alone", func(i *Interface) { i.MaxFrameSize = 65536 }, ""},
		{"both equal", func(i *Interface) { i.MaxFrameSize, i.MaxMessageSize = 65536, 65536 }, ""},
		{"both differ", func(i *Interface) { i.MaxFrameSize, i.MaxMessageSize = 65536, 4096 }, "interfaces[0].max_frame_size"},
		{"negative size", func(i *Interface) { i.MaxMessageSize = -1 }, "interfaces[0].max_message_size"},
		{"negative alias", func(i *Interface) { i.MaxFrameSize = -1 }, "interfaces[0].max_frame_size"},
		{"negative cap", func(i *Interface) { i.MaxConnections = -5 }, "interfaces[0].max_connections"},
		{"negative idle", func(i *Interface) { i.IdleTimeout = -1 }, "interfaces[0].idle_timeout"},
		{"unitless idle", func(i *Interface) { i.IdleTimeout = 600 }, "interfaces[0].idle_timeout: 600ns is too short; a duration needs a unit"},
		{"unitless read", func(i *Interface) { i.ReadTimeout = 30 }, "interfaces[0].read_timeout: 30ns is too short"},
	}
	for _, tt := range tests {
		it := base
		tt.mod(&it)
		err := Config{Interfaces: []Interface{it}}.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want it to name %q", tt.name, err, tt.want)
		}
	}
}
