module github.com/hl7bus/hl7bus/loadtest

go 1.26.0

require github.com/hl7bus/hl7bus/libs v0.0.0

require golang.org/x/image v0.47.0

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	go.uber.org/goleak v1.3.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/text v0.43.0 // indirect
)

// The workspace (go.work) resolves libs; the replace keeps the module
// buildable on its own.
replace (
	github.com/hl7bus/hl7bus/libs => ../libs
	github.com/hl7bus/hl7bus/schemas => ../schemas
)
