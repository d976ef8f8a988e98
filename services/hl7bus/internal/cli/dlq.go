package cli

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

const dlqUsage = `usage: hl7bus dlq list [--stage S] [--include-discarded] [--limit N] [--all] [--json]
       hl7bus dlq replay ID... [--resend] [--confirm-newer] [--yes]
       hl7bus dlq discard ID... --reason R

list prints the dead letters (ID <stage>:<partition>:<offset>, message,
control ID, stage, destination, reason), newest first; discarded ones only
with --include-discarded.

replay re-sends dead letters to the topic each came from (an egress dead
letter goes back to its out.<destination>): it prints the dry run first,
then starts the job with --yes or when you agree on a terminal; without a
terminal it needs --yes. A plan that would deliver a message after a
newer one of the same patient needs --confirm-newer as well.

discard sets dead letters aside (they stay in Kafka, hidden from list);
--reason is required and audited.

The API and the token: --api and --token-file, else $HL7BUS_API_URL and
$HL7BUS_TOKEN, else admin.address and <standalone.data_dir>/secrets/admin-token
of --config. Exit status: 0 done, 1 the API refused or failed, or the
replay was not confirmed, 2 usage.

options:
`

func runDLQ(args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText(dlqUsage))
		return ExitUsage
	}
	switch args[0] {
	case "list":
		return runDLQList(args[1:], env)
	case "replay":
		return runDLQReplay(args[1:], env)
	case "discard":
		return runDLQDiscard(args[1:], env)
	case "-h", "--help", "help":
		fmt.Fprint(env.Stdout, usageText(dlqUsage))
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "hl7bus dlq: unknown subcommand %q\n\n%s", args[0], usageText(dlqUsage))
	return ExitUsage
}

func runDLQList(args []string, env Env) int {
	c := newAPICmd("dlq list", dlqUsage, env, true)
	stage := c.fs.String("stage", "", "only the dead letters of stage `S` (ingress, parse, transform, route, egress)")
	discarded := c.fs.Bool("include-discarded", false, "list discarded dead letters too")
	limit := c.fs.Int("limit", 0, "rows per page, 1..1000 (default: the API's)")
	all := c.fs.Bool("all", false, "follow every page instead of printing the first")
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) > 0 {
		return c.usageErr("unexpected argument %q", rest[0])
	}
	q := url.Values{}
	if *stage != "" {
		q.Set("stage", *stage)
	}
	if *discarded {
		q.Set("include_discarded", "true")
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
	var rows []api.DeadLetter
	lines := newJSONLines(env.Stdout)
	more := ""
	for {
		page, err := cl.deadLetters(ctx, q)
		if err != nil {
			return c.fail(err)
		}
		for _, d := range page.DeadLetters {
			if c.flags.json {
				if err := lines.write(d); err != nil {
					return c.fail(err)
				}
				continue
			}
			rows = append(rows, d)
		}
		if page.NextCursor == "" {
			break
		}
		if !*all {
			more = page.NextCursor
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if !c.flags.json {
		if len(rows) == 0 {
			fmt.Fprintln(env.Stdout, "no dead letters")
		} else if err := printDeadLetters(env.Stdout, rows); err != nil {
			return c.fail(err)
		}
	}
	if more != "" {
		fmt.Fprintln(env.Stderr, "more dead letters: add --all")
	}
	return ExitOK
}

// printDeadLetters prints dead letters as a table; a discarded one says
// so after its reason.
func printDeadLetters(w io.Writer, ds []api.DeadLetter) error {
	t := newTable(w, "ID", "MESSAGE_ID", "CONTROL_ID", "STAGE", "DESTINATION", "FAILED_AT", "REASON")
	for _, d := range ds {
		reason := d.Reason
		if d.Discarded != nil {
			reason += " [discarded by " + d.Discarded.Actor + ": " + d.Discarded.Reason + "]"
		}
		if len(d.Replayed) > 0 {
			reason += " [replayed by " + strings.Join(d.Replayed, ",") + "]"
		}
		t.row(d.ID, orDash(d.MessageID), orDash(d.ControlID), d.Stage, orDash(d.Destination), fmtTime(d.FailedAt), reason)
	}
	return t.flush()
}

func runDLQReplay(args []string, env Env) int {
	c := newAPICmd("dlq replay", dlqUsage, env, false)
	var o replayOptions
	c.fs.BoolVar(&o.resend, "resend", false, "send even where the index shows the message delivered")
	c.fs.BoolVar(&o.confirmNewer, "confirm-newer", false, "start even when the plan warns of messages older than one already delivered to the same patient's destination")
	c.fs.BoolVar(&o.yes, "yes", false, "start the job after the dry run without asking")
	ids, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(ids) == 0 {
		return c.usageErr("give the IDs of the dead letters to replay (<stage>:<partition>:<offset>, from hl7bus dlq list)")
	}
	return runReplayPlan(c, api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: ids}, Resend: o.resend}, o)
}

func runDLQDiscard(args []string, env Env) int {
	c := newAPICmd("dlq discard", dlqUsage, env, false)
	reason := c.fs.String("reason", "", "why they are set aside (required; audited)")
	ids, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(ids) == 0 {
		return c.usageErr("give the IDs of the dead letters to discard")
	}
	if strings.TrimSpace(*reason) == "" {
		return c.usageErr("--reason is required")
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	res, err := cl.discard(ctx, api.DiscardRequest{IDs: ids, Reason: *reason})
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.Stdout, "discarded %d of %d dead letters\n", res.Discarded, len(ids))
	return ExitOK
}
