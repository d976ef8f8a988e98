module github.com/hl7bus/hl7bus/services/admin

go 1.26.0

require (
	github.com/hl7bus/hl7bus/libs v0.0.0
	github.com/twmb/franz-go v1.22.2
)

require (
	github.com/golang/snappy v0.0.1 // indirect
	github.com/hl7bus/hl7bus/schemas v0.0.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/linkedin/goavro/v2 v2.15.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/twmb/franz-go/pkg/kadm v1.19.0 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	github.com/twmb/franz-go/pkg/sr v1.8.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/text v0.43.0 // indirect
)

// The workspace (go.work) resolves libs; the replace keeps the module
// buildable on its own (GOWORK=off), as the other services do.
replace (
	github.com/hl7bus/hl7bus/libs => ../../libs
	github.com/hl7bus/hl7bus/schemas => ../../schemas
)
