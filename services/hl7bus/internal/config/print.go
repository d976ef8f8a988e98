package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Print returns the configuration as YAML with the values in force (Load
// has applied every default) and every secret redacted (a Secret prints as
// ********). max_frame_size is left out of each interface: the defaults
// fold that former name into max_message_size, and a 0 printed beside it
// would read as a limit. A rule prints only the operation it has, not
// the ten it leaves null.
func (f *File) Print() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(f); err != nil {
		return nil, fmt.Errorf("printing the configuration: %w", err)
	}
	if ifaces := mappingValue(&doc, "interfaces"); ifaces != nil {
		for _, it := range ifaces.Content {
			dropKey(it, "max_frame_size")
		}
	}
	for _, section := range []string{"interfaces", "destinations"} {
		if list := mappingValue(&doc, section); list != nil {
			for _, item := range list.Content {
				if rules := mappingValue(item, "rules"); rules != nil {
					for _, r := range rules.Content {
						dropNulls(r)
					}
				}
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("printing the configuration: %w", err)
	}
	return out, nil
}

// mappingValue returns the value of key in mapping node m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// dropKey removes key and its value from mapping node m.
func dropKey(m *yaml.Node, key string) {
	if m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// dropNulls removes the keys of mapping node m whose value is null.
func dropNulls(m *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		return
	}
	kept := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i+1].Tag == "!!null" {
			continue
		}
		kept = append(kept, m.Content[i], m.Content[i+1])
	}
	m.Content = kept
}
