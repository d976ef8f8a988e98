package transform

// SetRules swaps the rules Handle applies, whole: a record already being
// handled finishes on the rules it started with, every later one gets r.
// nil applies none. Safe to call while the stage runs (the reloader
// does, on SIGHUP or a changed configuration file).
func (s *Service) SetRules(r *Rules) { s.rules.Store(r) }

// CurrentRules returns the rules in force (Config.Rules until SetRules).
func (s *Service) CurrentRules() *Rules { return s.rules.Load() }
