package defs

import "errors"

// ErrCorrupt is returned by openCatalog and catalog.version when the
// embedded data file does not decode. The file is generated and tested, so
// the exported API turns this error into a panic (see data.go).
var ErrCorrupt = errors.New("defs: corrupt definitions data")
