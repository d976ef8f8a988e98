module github.com/hl7bus/hl7bus/services/admin

go 1.26.0

require (
	github.com/coreos/go-oidc/v3 v3.21.0
	github.com/hl7bus/hl7bus/libs v0.0.0
	github.com/twmb/franz-go v1.22.2
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/go-jose/go-jose/v4 v4.1.4 // indirect
	github.com/golang/snappy v0.0.1 // indirect
	github.com/hl7bus/hl7bus/schemas v0.0.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/linkedin/goavro/v2 v2.15.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	github.com/twmb/franz-go/pkg/sr v1.8.0 // indirect
	golang.org/x/oauth2 v0.36.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)

// The workspace (go.work) resolves libs; the replace keeps the module
// buildable on its own (GOWORK=off), as the other services do.
replace (
	github.com/hl7bus/hl7bus/libs => ../../libs
	github.com/hl7bus/hl7bus/schemas => ../../schemas
)
