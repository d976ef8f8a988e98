module github.com/hl7bus/hl7bus/schemas

go 1.26.0
