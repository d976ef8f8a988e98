package modules

import (
	"flag"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/index"
)

// newIndex builds the index consumer from the index section. The
// standalone fills in its driver, dsn and secret_file (config defaults);
// elsewhere dsn and secret_file must be configured.
func newIndex(f *config.File, d Deps) (Service, error) {
	if err := f.ValidateModules("index"); err != nil {
		return nil, err
	}
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	return index.New(f.Index, f.Kafka, serde, d.Log, d.Telemetry)
}

// indexFlags are the flags of `hl7bus index`: --rebuild sets
// index.rebuild for this run only. The key works too, but stays in the
// file and so rebuilds on every start until removed; the flag is the
// way.
func indexFlags(fs *flag.FlagSet) func(*config.File) {
	rebuild := fs.Bool("rebuild", false, "empty the index and read every topic again from its start, for this run (a rebuild stopped part-way continues on the next start, without the flag)")
	return func(f *config.File) {
		if *rebuild {
			f.Index.Rebuild = true
		}
	}
}
