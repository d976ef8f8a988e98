package config

import (
	"fmt"
	"reflect"
)

// RestartKeys returns the keys whose values differ between old and f
// other than those a reload applies (tables, routes, and the rules of
// each interface and destination): what a reload ignores and only a
// restart takes. A list whose length changed is named whole
// (interfaces), otherwise by element (interfaces[1]). Both files should
// have been prepared the same way (defaults, standalone addresses).
func (f *File) RestartKeys(old *File) []string {
	var keys []string
	sections := []struct {
		key      string
		old, new any
	}{
		{"log", old.Log, f.Log}, {"http", old.HTTP, f.HTTP}, {"tracing", old.Tracing, f.Tracing},
		{"kafka", old.Kafka, f.Kafka}, {"registry", old.Registry, f.Registry},
		{"standalone", old.Standalone, f.Standalone}, {"stages", old.Stages, f.Stages},
		{"parser", old.Parser, f.Parser},
	}
	for _, s := range sections {
		if !reflect.DeepEqual(s.old, s.new) {
			keys = append(keys, s.key)
		}
	}
	if len(old.Interfaces) != len(f.Interfaces) {
		keys = append(keys, "interfaces")
	} else {
		for i := range f.Interfaces {
			a, b := old.Interfaces[i], f.Interfaces[i]
			a.Rules, b.Rules = nil, nil
			if !reflect.DeepEqual(a, b) {
				keys = append(keys, fmt.Sprintf("interfaces[%d]", i))
			}
		}
	}
	if len(old.Destinations) != len(f.Destinations) {
		keys = append(keys, "destinations")
	} else {
		for i := range f.Destinations {
			a, b := old.Destinations[i], f.Destinations[i]
			a.Rules, b.Rules = nil, nil
			if !reflect.DeepEqual(a, b) {
				keys = append(keys, fmt.Sprintf("destinations[%d]", i))
			}
		}
	}
	return keys
}
