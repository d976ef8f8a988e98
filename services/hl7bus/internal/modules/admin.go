package modules

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hl7bus/hl7bus/libs/audit"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/index"
)

// adminService is the admin API with what it holds open: the index
// database it reads, the audit producer and the record reader. Start
// prepares the audit topic and binds the listener; Stop drains requests.
type adminService struct {
	srv     *admin.Server
	writer  *audit.Writer
	closers []func()
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
	s := &adminService{}
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
	prod, err := kafka.NewProducer(f.Kafka, log, kafka.Instrument(d.Telemetry, "admin").Opts()...)
	if err != nil {
		return nil, fmt.Errorf("admin: producer: %w", err)
	}
	s.closers = append(s.closers, prod.Close)
	s.writer = audit.NewWriter(prod, serde, f.Kafka, "admin")
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
	s.srv = admin.New(f.Admin, admin.Deps{Log: log, Telemetry: d.Telemetry, Auth: auth, Audit: s.writer, Index: idx,
		Records: records, Serde: serde, Replayer: rep, Controller: ctl, Destinations: dinfo, Interfaces: iinfo,
		Instance: d.Instance})
	ok = true
	return s, nil
}

func (s *adminService) Start(ctx context.Context) error {
	if err := s.writer.Prepare(ctx); err != nil {
		return err
	}
	return s.srv.Start(ctx)
}

func (s *adminService) Run(ctx context.Context) error {
	defer s.close()
	return s.srv.Run(ctx)
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
