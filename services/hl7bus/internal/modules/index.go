package modules

import (
	"errors"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/index"
)

// newIndex builds the index consumer from the index section. The
// standalone fills in its driver, dsn and secret_file (config defaults);
// elsewhere dsn and secret_file must be configured.
func newIndex(f *config.File, d Deps) (Service, error) {
	if f.Index.DSN == "" {
		return nil, errors.New("index.dsn: not set (a SQLite file or a PostgreSQL connection string)")
	}
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	return index.New(f.Index, f.Kafka, serde, d.Log, d.Telemetry)
}
