package modules

import (
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
