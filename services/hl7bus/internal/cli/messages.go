package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

const messagesUsage = `usage: hl7bus messages find [--control-id X] [--patient-id Y [--patient-authority A]]
                            [--interface I] [--facility F] [--type T] [--status S]
                            [--since T] [--until T] [--limit N] [--all] [--json]
       hl7bus messages show ID [--content] [--json]

find searches the message index through the admin API and prints one row
per message, newest first: its ID, control ID, interface, type, received
time, status and each destination's status. The patient ID is hashed by
the index; it is never stored. --since and --until take RFC 3339 times or
a duration back from now (24h). Without --all it prints one page of
--limit rows and says how to get the next.

show prints one message: its metadata, the records of each stage, the
route decisions, the delivery attempts and its dead letters; --content
adds each record's content (a role allowed to read content: analyst or
admin; the read is audited).

The API and the token: --api and --token-file, else $HL7BUS_API_URL and
$HL7BUS_TOKEN, else admin.address and <standalone.data_dir>/secrets/admin-token
of --config. Exit status: 0 done, 1 the API refused or failed, 2 usage.

options:
`

func runMessages(args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText(messagesUsage))
		return ExitUsage
	}
	switch args[0] {
	case "find":
		return runMessagesFind(args[1:], env)
	case "show":
		return runMessagesShow(args[1:], env)
	case "-h", "--help", "help":
		fmt.Fprint(env.Stdout, usageText(messagesUsage))
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "hl7bus messages: unknown subcommand %q\n\n%s", args[0], usageText(messagesUsage))
	return ExitUsage
}

func runMessagesFind(args []string, env Env) int {
	c := newAPICmd("messages find", messagesUsage, env, true)
	// Each flag is the query parameter of the same name with - for _.
	params := []string{"control-id", "patient-id", "patient-authority", "interface", "facility", "type", "status", "since", "until", "cursor"}
	vals := make(map[string]*string, len(params))
	for _, p := range params {
		vals[p] = c.fs.String(p, "", "only messages with this "+strings.ReplaceAll(p, "-", " "))
	}
	c.fs.Lookup("since").Usage = "only messages received at or after `T` (RFC 3339, or a duration back from now: 24h)"
	c.fs.Lookup("until").Usage = "only messages received before `T` (RFC 3339, or a duration back from now)"
	c.fs.Lookup("cursor").Usage = "start at the page a previous search named (next_cursor)"
	limit := c.fs.Int("limit", 0, "rows per page, 1..1000 (default: the API's, 100)")
	all := c.fs.Bool("all", false, "follow every page instead of printing the first")
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) > 0 {
		return c.usageErr("unexpected argument %q", rest[0])
	}
	if *vals["patient-authority"] != "" && *vals["patient-id"] == "" {
		return c.usageErr("--patient-authority needs --patient-id")
	}
	q := url.Values{}
	for _, p := range params {
		if v := *vals[p]; v != "" {
			q.Set(strings.ReplaceAll(p, "-", "_"), v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	var out messageWriter
	if c.flags.json {
		out = &messageJSON{lines: newJSONLines(env.Stdout)}
	} else {
		out = &messageTable{w: env.Stdout}
	}
	for {
		page, err := cl.messages(ctx, q)
		if err != nil {
			return c.fail(err)
		}
		for _, m := range page.Messages {
			if err := out.write(m); err != nil {
				return c.fail(err)
			}
		}
		if page.NextCursor == "" {
			break
		}
		if !*all {
			if err := out.flush(); err != nil {
				return c.fail(err)
			}
			fmt.Fprintf(env.Stderr, "more messages: add --all, or --cursor %s for the next page\n", page.NextCursor)
			return ExitOK
		}
		q.Set("cursor", page.NextCursor)
	}
	if err := out.flush(); err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// messageWriter prints search rows as a table or JSON lines.
type messageWriter interface {
	write(api.Message) error
	flush() error
}

type messageJSON struct{ lines jsonLines }

func (m *messageJSON) write(msg api.Message) error {
	if msg.Destinations == nil {
		// "destinations" is always a list, so a reader need not test for
		// null.
		msg.Destinations = []api.DestinationStatus{}
	}
	return m.lines.write(msg)
}
func (m *messageJSON) flush() error { return nil }

// messageTable buffers the rows so the columns align over all of them.
type messageTable struct {
	w    io.Writer
	rows []api.Message
}

func (m *messageTable) write(msg api.Message) error { m.rows = append(m.rows, msg); return nil }

func (m *messageTable) flush() error {
	if len(m.rows) == 0 {
		_, err := fmt.Fprintln(m.w, "no messages")
		return err
	}
	t := newTable(m.w, "MESSAGE_ID", "CONTROL_ID", "INTERFACE", "TYPE", "RECEIVED_AT", "STATUS", "DESTINATIONS")
	for _, r := range m.rows {
		t.row(r.MessageID, orDash(r.ControlID), r.Interface, orDash(r.Type), fmtTime(r.ReceivedAt), r.Status, destinationCell(r.Destinations))
	}
	m.rows = nil
	return t.flush()
}

// destinationCell is "lis=delivered,ris=ack_error".
func destinationCell(ds []api.DestinationStatus) string {
	if len(ds) == 0 {
		return "-"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Name + "=" + d.Status
	}
	return strings.Join(parts, ",")
}

func runMessagesShow(args []string, env Env) int {
	c := newAPICmd("messages show", messagesUsage, env, true)
	content := c.fs.Bool("content", false, "also print each record's content (needs a role that may read content; audited)")
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) != 1 {
		return c.usageErr("give one message ID")
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	d, err := cl.message(ctx, rest[0], *content)
	if err != nil {
		return c.fail(err)
	}
	if c.flags.json {
		err = newJSONLines(env.Stdout).write(d)
	} else {
		err = printMessageDetail(env.Stdout, d)
	}
	if err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// printMessageDetail prints a message for a person: metadata as
// "key: value" lines, then one table per kind of fact.
func printMessageDetail(w io.Writer, d api.MessageDetail) error {
	kv := newTable(w, "message_id:", d.MessageID)
	for _, f := range [][2]string{
		{"parent_message_id:", d.ParentMessageID}, {"control_id:", d.ControlID}, {"interface:", d.Interface},
		{"sending_facility:", d.SendingFacility}, {"type:", d.Type}, {"received_at:", fmtTime(d.ReceivedAt)},
		{"status:", d.Status}, {"stage_status:", d.StageStatus}, {"trace_id:", d.TraceID},
		{"config_version:", d.ConfigVersion}, {"updated_at:", fmtTime(d.UpdatedAt)},
	} {
		if f[1] != "" {
			kv.row(f[0], f[1])
		}
	}
	if err := kv.flush(); err != nil {
		return err
	}
	section := func(title string) { fmt.Fprintf(w, "\n%s:\n", title) }
	if len(d.Destinations) > 0 {
		section("destinations")
		t := newTable(w, "NAME", "STATUS", "ATTEMPTS", "LAST_OUTCOME", "UPDATED_AT")
		for _, x := range d.Destinations {
			t.row(x.Name, x.Status, strconv.Itoa(x.Attempts), orDash(x.LastOutcome), fmtTime(x.UpdatedAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.Records) > 0 {
		section("records")
		t := newTable(w, "KIND", "TOPIC", "PARTITION", "OFFSET", "AT")
		for _, r := range d.Records {
			t.row(r.Kind, r.Topic, strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Offset, 10), fmtTime(r.At))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.Decisions) > 0 {
		section("decisions")
		t := newTable(w, "STAGE", "DECIDED_AT", "OUTCOME", "DETAIL")
		for _, x := range d.Decisions {
			t.row(x.Stage, fmtTime(x.DecidedAt), x.Outcome, decisionDetail(x))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.Deliveries) > 0 {
		section("deliveries")
		t := newTable(w, "DESTINATION", "ATTEMPT", "OUTCOME", "ACK_CODE", "LATENCY_MS", "AT")
		for _, x := range d.Deliveries {
			t.row(x.Destination, strconv.Itoa(x.Attempt), x.Outcome, orDash(x.AckCode), strconv.FormatFloat(x.LatencyMS, 'f', 1, 64), fmtTime(x.At))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.DeadLetters) > 0 {
		section("dead letters")
		if err := printDeadLetters(w, d.DeadLetters); err != nil {
			return err
		}
	}
	for _, r := range d.Records {
		if r.Content == nil && r.ContentError == "" {
			continue
		}
		fmt.Fprintf(w, "\ncontent of %s %s[%d]@%d:\n", r.Kind, r.Topic, r.Partition, r.Offset)
		if r.ContentError != "" {
			fmt.Fprintf(w, "  (not readable: %s)\n", r.ContentError)
			continue
		}
		// HL7 is full of & and <; they print as themselves.
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.Content); err != nil {
			return fmt.Errorf("printing the content of %s: %w", r.Topic, err)
		}
	}
	return nil
}

// decisionDetail summarizes a decision in one cell: the filter that
// dropped the message, or each route's verdict and each destination's
// outcome.
func decisionDetail(d api.Decision) string {
	var parts []string
	if d.Filter != nil {
		parts = append(parts, "filter "+d.Filter.Rule+": "+d.Filter.Reason)
	}
	for _, r := range d.Routes {
		s := "route " + r.Route
		if r.Matched {
			s += " matched"
			if len(r.Destinations) > 0 {
				s += " -> " + strings.Join(r.Destinations, ",")
			}
		} else {
			s += " no match"
		}
		if r.Reason != "" {
			s += " (" + r.Reason + ")"
		}
		parts = append(parts, s)
	}
	for _, x := range d.Destinations {
		s := x.Destination + "=" + x.Outcome
		if x.Rule != "" {
			s += " by " + x.Rule
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}
