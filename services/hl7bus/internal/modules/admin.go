package modules

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/index"
)

// adminService is the admin API with what it holds open: the index
// database it reads and the record reader (the audit writer is the
// process's, from Deps). Start prepares the audit topic and binds the
// listener; Run also looks at the tokens file every
// tokenRefreshInterval, so a token created or revoked on the host is
// audited without waiting for a request; Stop drains requests.
type adminService struct {
	srv     *admin.Server
	auth    *admin.Auth
	deps    Deps
	closers []func()
}

// tokenRefreshInterval is how often the admin API looks at the tokens
// file between requests: `hl7bus admin tokens create|revoke` edits it on
// the host, and the audit events of the change are written when the
// API reads it.
const tokenRefreshInterval = 2 * time.Second

// auditTimeout bounds the write of an audit event nobody waits for (a
// token change found in the file).
const auditTimeout = 10 * time.Second

// serviceAuditor names service in the events that do not name their
// own: the process's writer is shared, and the admin API's events are
// the admin service's.
type serviceAuditor struct {
	w       admin.Auditor
	service string
}

func (a serviceAuditor) Audit(ctx context.Context, e canonical.AuditEvent) error {
	if e.Service == "" {
		e.Service = a.service
	}
	return a.w.Audit(ctx, e)
}

// tokenEvents are the audit events of tokens created and revoked by
// editing the tokens file: the actor is who ran the command (created_by,
// revoked_by), the auth "cli"; never the token or its hash.
func tokenEvents(added, revoked []admin.TokenRecord) []canonical.AuditEvent {
	var out []canonical.AuditEvent
	ev := func(action, by string, r admin.TokenRecord, at time.Time) canonical.AuditEvent {
		if by == "" {
			// A file from before created_by, or a hand edit.
			by = "unknown"
		}
		return canonical.AuditEvent{Service: "admin", Actor: by, Auth: "cli", Action: action,
			Resource: "token/" + r.ID, Outcome: canonical.AuditOK, At: at,
			Detail: "name=" + r.Name + " role=" + string(r.Role)}
	}
	for _, r := range added {
		out = append(out, ev("token.create", r.CreatedBy, r, r.CreatedAt))
	}
	for _, r := range revoked {
		out = append(out, ev("token.revoke", r.RevokedBy, r, *r.RevokedAt))
	}
	return out
}

// auditTokenChanges writes the events of the token changes auth finds
// to a. A failed write is logged: the change is made already (the file
// is the truth), and the event cannot be written later as it stands.
func auditTokenChanges(auth *admin.Auth, a admin.Auditor, log *slog.Logger) {
	auth.OnChange(func(added, revoked []admin.TokenRecord) {
		for _, e := range tokenEvents(added, revoked) {
			ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
			err := a.Audit(ctx, e)
			cancel()
			if err != nil {
				log.Error("cannot write a token change to the audit trail", logattr.Error(err))
			}
		}
	})
}

func newAdmin(f *config.File, d Deps) (Service, error) {
	if f.Admin.Address == "off" {
		return offService{log: d.Log, what: "admin API (admin.address is off)"}, nil
	}
	if err := f.ValidateModules("admin"); err != nil {
		return nil, err
	}
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	log := d.Log.With(logattr.Stage("admin"))
	secret, err := index.ReadSecret(f.Index.SecretFile)
	if err != nil {
		return nil, err
	}
	s := &adminService{deps: d}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	store, err := index.Open(context.Background(), f.Index.Driver, f.Index.DSN)
	if err != nil {
		return nil, fmt.Errorf("index.dsn: %w", err)
	}
	s.closers = append(s.closers, func() { _ = store.Close() })
	idx := newAdminIndex(store, secret)
	auth, err := admin.NewAuthenticator(context.Background(), f.Admin, log)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	w, err := d.Audit(f)
	if err != nil {
		return nil, err
	}
	writer := serviceAuditor{w: w, service: "admin"}
	auditTokenChanges(auth, writer, log)
	records, err := admin.NewRecordReader(f.Kafka, log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, records.Close)
	dests := make([]string, len(f.Destinations))
	dinfo := make([]admin.DestinationInfo, len(f.Destinations))
	for i, dst := range f.Destinations {
		dst = dst.WithDefaults()
		dests[i] = dst.Name
		dinfo[i] = admin.DestinationInfo{Name: dst.Name, Protocol: dst.Protocol}
	}
	iinfo := make([]admin.InterfaceInfo, len(f.Interfaces))
	for i, it := range f.Interfaces {
		iinfo[i] = admin.InterfaceInfo{Name: it.Name, Protocol: it.Protocol, Address: it.Address}
	}
	ctl, err := admin.NewController(f.Kafka, serde, nil, dests, log)
	if err != nil {
		return nil, err
	}
	rep, err := admin.NewReplayer(admin.ReplayerConfig{Kafka: f.Kafka, Serde: serde, Index: idx, Records: records,
		Limits: f.Admin.Replay, Instance: d.Instance, Log: log, Telemetry: d.Telemetry, Destinations: dests})
	if err != nil {
		return nil, err
	}
	s.srv = admin.New(f.Admin, admin.Deps{Log: log, Telemetry: d.Telemetry, Auth: auth, Audit: writer, Index: idx,
		Records: records, Serde: serde, Replayer: rep, Controller: ctl, Destinations: dinfo, Interfaces: iinfo,
		Instance: d.Instance})
	ok = true
	return s, nil
}

func (s *adminService) Start(ctx context.Context) error {
	if err := s.deps.PrepareAudit(ctx); err != nil {
		return err
	}
	return s.srv.Start(ctx)
}

func (s *adminService) Run(ctx context.Context) error {
	defer s.close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshTokens(rctx, s.auth, tokenRefreshInterval)
	}()
	defer func() {
		cancel()
		<-done
	}()
	return s.srv.Run(ctx)
}

// refreshTokens looks at the tokens file every interval until ctx ends
// (a read error is logged by the authenticator, once per change).
func refreshTokens(ctx context.Context, auth *admin.Auth, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = auth.Refresh()
		}
	}
}

func (s *adminService) Stop(ctx context.Context) error { return s.srv.Stop(ctx) }

func (s *adminService) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// offService is a module switched off by its configuration: it says so
// once and waits.
type offService struct {
	log  *slog.Logger
	what string
}

func (o offService) Run(ctx context.Context) error {
	o.log.Info("not running the " + o.what)
	<-ctx.Done()
	return nil
}
