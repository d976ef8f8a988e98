package defs

import (
	_ "embed"
	"fmt"
	"sync"
)

// defsData is the generated data file: every version's definitions, each
// distinct item once, gzip-compressed (see internal/pack for the format
// and README.md for how it is made). As an embedded string it is read-only
// data without pointers; nothing is decoded until a version is looked up.
//
//go:embed defs.bin.gz
var defsData string

// data opens the catalog on first use. A decode failure panics: the file
// is a build input, checked by the tests and by make check-generated, so
// it cannot fail at run time unless the binary itself is broken, and then
// answering "unknown version" for every message would hide the cause.
var data = sync.OnceValue(func() *catalog {
	c, err := openCatalog(defsData)
	if err != nil {
		panic(fmt.Errorf("opening embedded definitions: %w", err))
	}
	return c
})

// loaders build each version once, on first use; the result is shared
// read-only.
var loaders = sync.OnceValue(func() []func() *Version {
	c := data()
	out := make([]func() *Version, len(c.versionIDs))
	for i := range c.versionIDs {
		out[i] = sync.OnceValue(func() *Version {
			v, err := c.version(i)
			if err != nil {
				panic(fmt.Errorf("decoding embedded definitions of %s: %w", c.versionIDs[i], err))
			}
			return v
		})
	}
	return out
})

var tables = sync.OnceValue(func() []Table {
	t, err := data().allTables()
	if err != nil {
		panic(fmt.Errorf("decoding embedded definitions: %w", err))
	}
	return t
})
