module github.com/hl7bus/hl7bus/services/hl7bus

go 1.26.0

require github.com/hl7bus/hl7bus/libs v0.0.0

// The workspace (go.work) resolves libs; the replace keeps the module
// buildable on its own (GOWORK=off), e.g. by `go install` from a clone.
replace github.com/hl7bus/hl7bus/libs => ../../libs
