// Package hl7v2 reads, writes, queries, validates and acknowledges HL7
// version 2 messages (2.1 through 2.8.x) in the ER7 ("pipe and hat") wire
// format.
//
// A parsed [Message] keeps the bytes it was given and an index of segment and
// field boundaries into them; repetitions, components and subcomponents are
// split only when asked for. Parsing is therefore lossless (Encode returns
// the input after terminator normalisation) and cheap: a message costs a
// handful of allocations however many fields it has.
//
// Values have three states, reported by [Value]: absent (the message stops
// before the position), empty (present, nothing between delimiters) and the
// explicit null "" (the sender asks the receiver to delete the value).
//
// # Segment terminators
//
// The standard ends segments with CR. Senders and files also use LF and
// CRLF, so the rule is: when the message contains a CR anywhere, CR (and a CR
// immediately followed by LF) ends a segment and a lone LF is data, which
// keeps line breaks that some senders put inside text fields; otherwise LF
// ends a segment. Empty lines are skipped and a leading UTF-8 byte-order mark
// is ignored.
//
// # Paths
//
// [ParsePath] and the Get/Set methods address values with the grammar
//
//	path       = segment [ "[" ( occurrence | "*" ) "]" ] "-" field
//	             [ "[" ( repetition | "*" ) "]" ] [ "." component [ "." subcomponent ] ]
//	segment    = 3 upper-case letters or digits
//	occurrence, field, repetition, component, subcomponent = positive integer
//
// Every index is 1-based, the way the standard numbers things: PID-3[2].1 is
// the first component of the second repetition of the third field of the
// first PID; OBX[3]-5 is the fifth field of the third OBX. An omitted
// occurrence or repetition means the first. For MSH, FHS and BHS, field 1 is
// the field separator and field 2 the encoding characters, as the standard
// counts them.
//
// The wildcard [*] addresses every occurrence or every repetition:
// OBX[*]-5 is OBX-5 of each OBX, PID-3[*].1 the first component of each
// repetition of PID-3, OBX[*]-3[*].1 both at once. [Message.Values] reads
// every match in message order and [Message.Expand] lists the concrete
// paths, which is how a rule writes to each match; Get and Set refuse a
// wildcard path, since it names more than one value, and [Message.Value]
// reads its first match.
//
// # Changing a message
//
// Set, SetRaw, [Message.DeleteSegment] and [Message.InsertSegment] change a
// message by replacing whole segments, never by writing into a segment's
// bytes, so [Message.Clone] is a copy of the segment list and a clone and
// its original never see each other's changes.
//
// # Escapes
//
// On read, \F\ \S\ \T\ \R\ \E\ (and \P\ where MSH-2 declares a truncation
// character) become the delimiter they stand for and \Xhhhh\ becomes the
// bytes it spells, which are then decoded with the message's character set.
// Formatting escapes (\H\ \N\ \.br\ \.sp\ \.fi\ \.nf\ \.in\ \.ti\ \.sk\ \.ce\)
// and character-set escapes (\Cxxyy\ \Mxxyy\) and locally defined ones (\Z..\)
// are not plain text, so they are kept verbatim, escape characters included,
// for the consumer that knows what to do with them. A malformed escape (no
// closing escape character, an empty or unknown sequence, \X with an odd
// number or non-hexadecimal digits) is kept verbatim as text as well: a
// receiver must not lose content because a sender escaped badly, and the
// validator reports it as a warning. On write, values set through the API
// have every delimiter escaped.
//
// # Errors, issues and message content
//
// Parse errors ([ParseError]) and validation issues ([Issue]) name
// positions, lengths, table numbers and definitions, never a byte of the
// message: they reach logs, dead-letter reasons, span status and the ERR
// and MSA-3 of ACKs, and a message's content is patient data. A test feeds
// a sentinel name and MRN through every parse failure and every validation
// rule to keep it so.
//
// # Answering what does not parse
//
// [ParseIssue] turns a parse error into the Issue an AR carries (code and,
// where one can be named, location). [PeekHeader] reads MSH-9, MSH-10 and
// MSH-12 of a frame whose MSH-2 is broken, by splitting on the field
// separator alone, so the AR can still carry MSA-2. [RequiredHeaderIssues]
// lists the missing header fields (MSH-9, MSH-10, MSH-12) a receiver should
// reject a parsed message for. [IsAck] goes by MSH-9.1 only.
package hl7v2
