package canonical

import "github.com/hl7bus/hl7bus/libs/hl7v2"

// HeaderOf summarises a message's MSH for a record.
func HeaderOf(m *hl7v2.Message) Header {
	h := m.HeaderView()
	return Header{SendingApplication: h.SendingApplication, SendingFacility: h.SendingFacility,
		ReceivingApplication: h.ReceivingApplication, ReceivingFacility: h.ReceivingFacility,
		MessageCode: h.MessageCode, TriggerEvent: h.TriggerEvent, MessageStructure: h.MessageStructure,
		ControlID: h.ControlID, ProcessingID: h.ProcessingID, Version: h.Version, Charset: h.Charset}
}
