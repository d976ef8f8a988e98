package route

// SetRules swaps the compiled routes and destination rules Handle
// applies, whole: a record already being handled finishes on the rules
// it started with, every later one gets r. Safe to call while the stage
// runs (the reloader does, on SIGHUP or a changed configuration file).
func (s *Service) SetRules(r *Rules) { s.rules.Store(r) }

// CurrentRules returns the compiled rules in force (nil until SetRules).
func (s *Service) CurrentRules() *Rules { return s.rules.Load() }
