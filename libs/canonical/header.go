package canonical

import (
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// HeaderOf summarises a message's MSH for a record. Ingress computes it
// once and every later record carries it (parse derives it again only for
// the messages of a batch, each with its own MSH). Version is trimmed:
// routes and the definitions look it up as 2.5, not " 2.5".
func HeaderOf(m *hl7v2.Message) Header {
	h := m.HeaderView()
	return Header{SendingApplication: h.SendingApplication, SendingFacility: h.SendingFacility,
		ReceivingApplication: h.ReceivingApplication, ReceivingFacility: h.ReceivingFacility,
		MessageCode: h.MessageCode, TriggerEvent: h.TriggerEvent, MessageStructure: h.MessageStructure,
		ControlID: h.ControlID, ProcessingID: h.ProcessingID, Version: strings.TrimSpace(h.Version), Charset: h.Charset}
}
