package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretNeverPrints(t *testing.T) {
	type section struct {
		User     string `yaml:"user" json:"user"`
		Password Secret `yaml:"password" json:"password"`
	}
	v := section{User: "hl7bus", Password: "hunter2"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "password", v.Password, "section", v)
	y, _ := yaml.Marshal(v)
	j, _ := json.Marshal(v)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", v), "%+v": fmt.Sprintf("%+v", v), "%#v": fmt.Sprintf("%#v", v), "String": v.Password.String(),
		"yaml": string(y), "json": string(j), "slog": logs.String(),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s prints the secret: %s", name, out)
		}
		if !strings.Contains(out, "********") {
			t.Errorf("%s does not show the redaction: %s", name, out)
		}
	}
	if v.Password.Value() != "hunter2" {
		t.Error("Value")
	}
	if Secret("").String() != "" {
		t.Error("an empty secret prints empty, so a missing one is visible")
	}
}
