package defs

import (
	"slices"
	"testing"
)

// BenchmarkFirstUse measures what the first Lookup of a version costs, on
// a fresh catalog each time: open is the decompression and indexing done
// once per process, version the building of one version's values.
func BenchmarkFirstUse(b *testing.B) {
	i := slices.Index(Versions(), "2.5.1")
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := openCatalog(defsData); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open+2.5.1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := openCatalog(defsData)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.version(i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open+all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := openCatalog(defsData)
			if err != nil {
				b.Fatal(err)
			}
			for j := range c.versionIDs {
				if _, err := c.version(j); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkLookup is the hot path after first use: one map read.
func BenchmarkLookup(b *testing.B) {
	Lookup("2.5.1")
	for b.Loop() {
		if _, ok := Lookup("2.5.1"); !ok {
			b.Fatal("no 2.5.1")
		}
	}
}
