package cli

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

const destinationsUsage = `usage: hl7bus destinations list [--json]
       hl7bus destinations pause NAME [--reason R]
       hl7bus destinations resume NAME [--reason R] [--force]
       hl7bus destinations reset NAME --to T

list prints each destination's state (running or paused, by whom, since
when, why), the reset a paused one waits on (applied, or pending on which
partitions) and its messages by status over the last 24 hours. pause stops
every egress replica sending to NAME (the messages wait in Kafka; a pause
survives restarts); resume starts it again. reset moves a paused
destination's consumer group to the first record at or after T (RFC 3339,
or a duration back from now: 1h): what it had sent since is sent again,
what it skipped is skipped. Egress applies a reset when it next takes the
destination's partitions (seconds; at its next start when none runs);
until it has on every partition, resume refuses (the reset would be
lost), and --force resumes anyway, dropping the reset.

The API and the token: --api and --token-file, else $HL7BUS_API_URL and
$HL7BUS_TOKEN, else admin.address and <standalone.data_dir>/secrets/admin-token
of --config. Exit status: 0 done, 1 the API refused or failed, 2 usage.

options:
`

func runDestinations(args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText(destinationsUsage))
		return ExitUsage
	}
	switch args[0] {
	case "list":
		return runDestinationsList(args[1:], env)
	case "pause", "resume":
		return runDestinationControl(args[0], args[1:], env)
	case "reset":
		return runDestinationReset(args[1:], env)
	case "-h", "--help", "help":
		fmt.Fprint(env.Stdout, usageText(destinationsUsage))
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "hl7bus destinations: unknown subcommand %q\n\n%s", args[0], usageText(destinationsUsage))
	return ExitUsage
}

func runDestinationsList(args []string, env Env) int {
	c := newAPICmd("destinations list", destinationsUsage, env, true)
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
	l, err := cl.destinations(ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.flags.json {
		lines := newJSONLines(env.Stdout)
		for _, d := range l.Destinations {
			if err := lines.write(d); err != nil {
				return c.fail(err)
			}
		}
		return ExitOK
	}
	if len(l.Destinations) == 0 {
		fmt.Fprintln(env.Stdout, "no destinations")
		return ExitOK
	}
	t := newTable(env.Stdout, "NAME", "PROTOCOL", "STATE", "SINCE", "ACTOR", "REASON", "RESET", "LAST_24H")
	for _, d := range l.Destinations {
		t.row(d.Name, orDash(d.Protocol), d.State, fmtTime(d.Since), orDash(d.Actor), orDash(d.Reason), resetCell(d), countsCell(d.Counts))
	}
	if err := t.flush(); err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// countsCell is "delivered=12,rejected=1", sorted by status.
func countsCell(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatInt(m[k], 10)
	}
	return strings.Join(parts, ",")
}

// resetCell is where a paused destination's reset stands: "-" (none),
// "to T applied", or "to T pending on 0,2".
func resetCell(d api.DestinationState) string {
	if d.ResetID == "" {
		return "-"
	}
	if !d.ResetPending {
		return "to " + fmtTime(d.ResetTo) + " applied"
	}
	return "to " + fmtTime(d.ResetTo) + " pending on " + partitionsText(d.ResetPendingPartitions)
}

func partitionsText(ps []int32) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ",")
}

// runDestinationControl is pause and resume (verb).
func runDestinationControl(verb string, args []string, env Env) int {
	c := newAPICmd("destinations "+verb, destinationsUsage, env, false)
	reason := c.fs.String("reason", "", "why (shown in destinations list and audited)")
	var force *bool
	if verb == "resume" {
		force = c.fs.Bool("force", false, "resume although the destination's reset is not applied yet on every partition: the reset is dropped")
	}
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) != 1 {
		return c.usageErr("give one destination name")
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	req := api.PauseRequest{Reason: *reason}
	if force != nil {
		req.Force = *force
	}
	s, err := cl.control(ctx, rest[0], verb, req)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Param == "force" {
		// The API's text names the reset and its partitions; say what
		// the operator can do.
		fmt.Fprintf(env.Stderr, "error: %s\n\nwait until \"hl7bus destinations list\" shows the reset applied and resume again, "+
			"or resume with --force to drop the reset\n", ae.Msg)
		return ExitInvalid
	}
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.Stdout, "destination %s: %s\n", s.Name, s.State)
	return ExitOK
}

func runDestinationReset(args []string, env Env) int {
	c := newAPICmd("destinations reset", destinationsUsage, env, false)
	to := c.fs.String("to", "", "move the consumer group to the first record at or after `T` (RFC 3339, or a duration back from now; required)")
	rest, ok := c.parse(args)
	if !ok {
		return ExitUsage
	}
	if len(rest) != 1 {
		return c.usageErr("give one destination name")
	}
	if *to == "" {
		return c.usageErr("--to is required")
	}
	at, err := parseWhen(*to, time.Now())
	if err != nil {
		return c.usageErr("--to: %v", err)
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	ctx, stop := apiContext()
	defer stop()
	s, err := cl.reset(ctx, rest[0], at)
	if err != nil {
		return c.fail(err)
	}
	switch {
	case s.ResetID == "":
		// A later state (a forced resume, another operator) replaced the
		// order before egress applied it.
		fmt.Fprintf(env.Stdout, "destination %s: %s; the reset to %s was replaced before egress applied it: it is not in effect\n",
			s.Name, s.State, fmtTime(at))
	case s.ResetPending:
		fmt.Fprintf(env.Stdout, "destination %s: %s, reset to %s ordered but not applied yet on partition(s) %s "+
			"(egress applies it when it takes them: is egress running?); resume waits for it\n",
			s.Name, s.State, fmtTime(at), partitionsText(s.ResetPendingPartitions))
	default:
		fmt.Fprintf(env.Stdout, "destination %s: %s, reset to %s applied; resume it to send from there\n", s.Name, s.State, fmtTime(at))
	}
	return ExitOK
}
