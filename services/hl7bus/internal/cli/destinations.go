package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

const destinationsUsage = `usage: hl7bus destinations list [--json]
       hl7bus destinations pause NAME [--reason R]
       hl7bus destinations resume NAME [--reason R]
       hl7bus destinations reset NAME --to T

list prints each destination's state (running or paused, by whom, since
when, why) and its messages by status over the last 24 hours. pause stops
every egress replica sending to NAME (the messages wait in Kafka; a pause
survives restarts); resume starts it again. reset moves a paused
destination's consumer group to the first record at or after T (RFC 3339,
or a duration back from now: 1h): what it had sent since is sent again,
what it skipped is skipped.

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
	t := newTable(env.Stdout, "NAME", "PROTOCOL", "STATE", "SINCE", "ACTOR", "REASON", "LAST_24H")
	for _, d := range l.Destinations {
		t.row(d.Name, orDash(d.Protocol), d.State, fmtTime(d.Since), orDash(d.Actor), orDash(d.Reason), countsCell(d.Counts))
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

// runDestinationControl is pause and resume (verb).
func runDestinationControl(verb string, args []string, env Env) int {
	c := newAPICmd("destinations "+verb, destinationsUsage, env, false)
	reason := c.fs.String("reason", "", "why (shown in destinations list and audited)")
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
	s, err := cl.control(ctx, rest[0], verb, *reason)
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
	fmt.Fprintf(env.Stdout, "destination %s: %s, reset to %s; resume it to send from there\n", s.Name, s.State, fmtTime(at))
	return ExitOK
}
