package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

const replayUsage = `usage: hl7bus replay [--message-id M]... [--control-id X] [--interface I] [--type T]
                     [--status S] [--since T] [--until T] [--destination D] [--target T]
                     [--resend] [--rate N] [--dry-run] [--yes] [--confirm-newer]
       hl7bus replay jobs [--json]
       hl7bus replay show JOB [--json]
       hl7bus replay cancel JOB

replay re-sends messages as a bounded job. The selector is the message IDs
(--message-id, repeatable) or a filter (control ID, interface, type,
status, destination, time range; a filter needs --since). The target is
parse, transform, route or destination:<name>; without one a message goes
to route, or to --destination when given. Pairs (message, destination)
the index shows delivered are skipped unless --resend.

It prints the plan first (the count, what is skipped, a sample and any
warnings) and starts the job only with --yes or when you agree on a
terminal; without a terminal it needs --yes. A warning means a message
would reach a destination after a newer message of the same patient did
(an old A08 overwriting newer demographics): the job then needs
--confirm-newer too. --dry-run prints the plan and stops. --since and
--until take RFC 3339 times or a duration back from now (24h).

jobs lists the replay jobs; show prints one; cancel stops one.

The API and the token: --api and --token-file, else $HL7BUS_API_URL and
$HL7BUS_TOKEN, else admin.address and <standalone.data_dir>/secrets/admin-token
of --config. Exit status: 0 done (or planned), 1 the API refused or failed,
or the job was not confirmed, 2 usage.

options:
`

// replayOptions are how a replay command goes from plan to job.
type replayOptions struct {
	resend, dryRun, yes, confirmNewer bool
}

func runReplay(args []string, env Env) int {
	if len(args) > 0 {
		switch args[0] {
		case "jobs":
			return runReplayJobs(args[1:], env)
		case "show":
			return runReplayShow(args[1:], env)
		case "cancel":
			return runReplayCancel(args[1:], env)
		case "help":
			fmt.Fprint(env.Stdout, usageText(replayUsage))
			return ExitOK
		}
	}
	c := newAPICmd("replay", replayUsage, env, false)
	var ids stringList
	c.fs.Var(&ids, "message-id", "replay message `M` (repeatable)")
	var sel api.ReplaySelector
	c.fs.StringVar(&sel.ControlID, "control-id", "", "only messages with control ID `X`")
	c.fs.StringVar(&sel.Interface, "interface", "", "only messages received on interface `I`")
	c.fs.StringVar(&sel.Type, "type", "", "only messages of type `T` (ADT^A08)")
	c.fs.StringVar(&sel.Status, "status", "", "only messages with status `S`")
	c.fs.StringVar(&sel.Destination, "destination", "", "only to destination `D`")
	since := c.fs.String("since", "", "only messages received at or after `T` (RFC 3339, or a duration back from now: 24h)")
	until := c.fs.String("until", "", "only messages received before `T`")
	target := c.fs.String("target", "", "re-send to `T`: parse, transform, route or destination:NAME (default: route, or --destination's)")
	rate := c.fs.Float64("rate", 0, "records per second `N` (default: admin.replay.rate; capped by admin.replay.max_rate)")
	var o replayOptions
	c.fs.BoolVar(&o.resend, "resend", false, "send even where the index shows the message delivered")
	c.fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and stop")
	c.fs.BoolVar(&o.yes, "yes", false, "start the job after the plan without asking")
	c.fs.BoolVar(&o.confirmNewer, "confirm-newer", false, "start even when the plan warns of messages older than one already delivered to the same patient's destination")
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) > 0 {
		return c.usageErr("unexpected argument %q (subcommands: jobs, show, cancel)", rest[0])
	}
	sel.MessageIDs = ids
	now := time.Now()
	for _, w := range []struct {
		flag, val string
		to        *time.Time
	}{{"--since", *since, &sel.Since}, {"--until", *until, &sel.Until}} {
		if w.val == "" {
			continue
		}
		t, err := parseWhen(w.val, now)
		if err != nil {
			return c.usageErr("%s: %v", w.flag, err)
		}
		*w.to = t
	}
	if len(sel.MessageIDs) > 0 && (sel.ControlID != "" || sel.Interface != "" || sel.Type != "" || sel.Status != "" || !sel.Since.IsZero() || !sel.Until.IsZero()) {
		return c.usageErr("--message-id selects by itself; drop the filter flags or the IDs")
	}
	if len(sel.MessageIDs) == 0 && sel.Since.IsZero() {
		return c.usageErr("give --message-id, or a filter with --since")
	}
	if *target != "" && !validTarget(*target) {
		return c.usageErr("--target %q: use parse, transform, route or destination:NAME", *target)
	}
	if *rate < 0 {
		return c.usageErr("--rate must be positive")
	}
	return runReplayPlan(c, api.ReplayRequest{Selector: sel, Target: *target, Resend: o.resend, Rate: *rate}, o)
}

func validTarget(t string) bool {
	switch t {
	case api.TargetParse, api.TargetTransform, api.TargetRoute:
		return true
	}
	name, ok := strings.CutPrefix(t, api.TargetDestinationPrefix)
	return ok && name != ""
}

// runReplayPlan asks for the dry run of req, prints it and, when
// confirmed, starts the job: --yes, or a yes on a terminal; a plan with
// warnings needs --confirm-newer as well.
func runReplayPlan(c *apiCmd, req api.ReplayRequest, o replayOptions) int {
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	req.Confirm, req.ConfirmNewer = false, false
	plan, _, err := cl.replay(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	if plan == nil {
		return c.fail(errors.New("the dry run answered a job, not a plan"))
	}
	if err := printPlan(c.env.Stdout, *plan); err != nil {
		return c.fail(err)
	}
	if o.dryRun {
		return ExitOK
	}
	if plan.Count == 0 {
		fmt.Fprintln(c.env.Stdout, "nothing to send; no job started")
		return ExitOK
	}
	if len(plan.Warnings) > 0 && !o.confirmNewer {
		return c.fail(fmt.Errorf("the plan has %d newer-message warnings; add --confirm-newer to start it anyway", len(plan.Warnings)))
	}
	if !o.yes {
		agreed, err := confirm(c.env.Stdin, isTerminal(c.env.Stdin), c.env.Stderr, fmt.Sprintf("start the replay of %d records?", plan.Count))
		if errors.Is(err, errNotTTY) {
			return c.fail(errors.New("stdin is not a terminal: add --yes to start the replay"))
		}
		if err != nil {
			return c.fail(err)
		}
		if !agreed {
			fmt.Fprintln(c.env.Stdout, "not started")
			return ExitInvalid
		}
	}
	req.Confirm, req.ConfirmNewer = true, o.confirmNewer
	plan, job, err := cl.replay(ctx, req)
	if err != nil {
		if plan != nil {
			// The plan changed since the dry run and now warns.
			_ = printPlan(c.env.Stdout, *plan)
			return c.fail(fmt.Errorf("the plan now has %d newer-message warnings; add --confirm-newer to start it anyway", len(plan.Warnings)))
		}
		return c.fail(err)
	}
	if job == nil {
		return c.fail(errors.New("the API answered a plan, not a started job"))
	}
	fmt.Fprintf(c.env.Stdout, "started replay job %s: %d records, %s records/s; follow it with hl7bus replay show %s\n",
		job.ID, job.Total, strconv.FormatFloat(job.Rate, 'f', -1, 64), job.ID)
	return ExitOK
}

// printPlan prints a dry run: counts, the sample and the warnings.
func printPlan(w io.Writer, p api.ReplayPlan) error {
	fmt.Fprintf(w, "plan: %d records to send", p.Count)
	if p.Skipped > 0 {
		fmt.Fprintf(w, ", %d (message, destination) pairs skipped as delivered (--resend sends them)", p.Skipped)
	}
	fmt.Fprintln(w)
	if len(p.Sample) > 0 {
		fmt.Fprintf(w, "\nsample (%d of %d):\n", len(p.Sample), p.Count)
		t := newTable(w, "MESSAGE_ID", "CONTROL_ID", "TYPE", "DESTINATION", "TARGET_TOPIC")
		for _, s := range p.Sample {
			t.row(s.MessageID, orDash(s.ControlID), orDash(s.Type), orDash(s.Destination), s.TargetTopic)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(w, "\nwarnings: %d messages would reach a destination after a newer message of the same patient:\n", len(p.Warnings))
		t := newTable(w, "MESSAGE_ID", "DESTINATION", "NEWER_MESSAGE_ID", "REASON")
		for _, x := range p.Warnings {
			t.row(x.MessageID, x.Destination, x.NewerMessageID, x.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

func runReplayJobs(args []string, env Env) int {
	c := newAPICmd("replay jobs", replayUsage, env, true)
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) > 0 {
		return c.usageErr("unexpected argument %q", rest[0])
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	l, err := cl.replayJobs(ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.flags.json {
		lines := newJSONLines(env.Stdout)
		for _, j := range l.Jobs {
			if err := lines.write(j); err != nil {
				return c.fail(err)
			}
		}
		return ExitOK
	}
	if len(l.Jobs) == 0 {
		fmt.Fprintln(env.Stdout, "no replay jobs")
		return ExitOK
	}
	t := newTable(env.Stdout, "ID", "STATE", "ACTOR", "TARGET", "SENT", "TOTAL", "SKIPPED", "FAILED", "CREATED_AT")
	for _, j := range l.Jobs {
		t.row(j.ID, j.State, j.Actor, orDash(j.Target), strconv.FormatInt(j.Sent, 10), strconv.FormatInt(j.Total, 10),
			strconv.FormatInt(j.Skipped, 10), strconv.FormatInt(j.Failed, 10), fmtTime(j.CreatedAt))
	}
	if err := t.flush(); err != nil {
		return c.fail(err)
	}
	return ExitOK
}

func runReplayShow(args []string, env Env) int {
	c := newAPICmd("replay show", replayUsage, env, true)
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) != 1 {
		return c.usageErr("give one job ID")
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	j, err := cl.replayJob(ctx, rest[0])
	if err != nil {
		return c.fail(err)
	}
	if c.flags.json {
		err = newJSONLines(env.Stdout).write(j)
	} else {
		err = printJob(env.Stdout, j)
	}
	if err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// printJob prints a job as "key: value" lines.
func printJob(w io.Writer, j api.ReplayJob) error {
	t := newTable(w, "id:", j.ID)
	t.row("state:", j.State)
	t.row("actor:", j.Actor)
	t.row("selector:", selectorText(j.Selector))
	t.row("target:", orDash(j.Target))
	t.row("resend:", strconv.FormatBool(j.Resend))
	t.row("confirmed_newer:", strconv.FormatBool(j.ConfirmedNewer))
	t.row("rate:", strconv.FormatFloat(j.Rate, 'f', -1, 64)+" records/s")
	t.row("progress:", fmt.Sprintf("%d of %d sent, %d skipped, %d failed", j.Sent, j.Total, j.Skipped, j.Failed))
	t.row("created_at:", fmtTime(j.CreatedAt))
	t.row("updated_at:", fmtTime(j.UpdatedAt))
	if j.Error != "" {
		t.row("error:", j.Error)
	}
	return t.flush()
}

// selectorText is a selector in one line, its set fields as key=value.
func selectorText(s api.ReplaySelector) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("message_ids", strings.Join(s.MessageIDs, ","))
	add("dead_letters", strings.Join(s.DeadLetters, ","))
	add("control_id", s.ControlID)
	add("interface", s.Interface)
	add("type", s.Type)
	add("status", s.Status)
	add("destination", s.Destination)
	if !s.Since.IsZero() {
		add("since", fmtTime(s.Since))
	}
	if !s.Until.IsZero() {
		add("until", fmtTime(s.Until))
	}
	return orDash(strings.Join(parts, " "))
}

func runReplayCancel(args []string, env Env) int {
	c := newAPICmd("replay cancel", replayUsage, env, false)
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) != 1 {
		return c.usageErr("give one job ID")
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	j, err := cl.cancelReplayJob(ctx, rest[0])
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.Stdout, "replay job %s: %s, %d of %d sent\n", j.ID, j.State, j.Sent, j.Total)
	return ExitOK
}
