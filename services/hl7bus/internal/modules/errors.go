package modules

import "errors"

var (
	// ErrUnknownTarget is returned by Registry.Resolve for a target no
	// module is named after; its text lists the valid names.
	ErrUnknownTarget = errors.New("unknown target")
	// ErrBadRegistry is returned by NewRegistry for a table that names a
	// module twice, or a dependency not declared before the module.
	ErrBadRegistry = errors.New("bad module registry")
	// ErrStoppedEarly is returned by Run when a module's Run returned
	// without an error before shutdown began: a module runs until its
	// context ends, so the process stops rather than go on without it.
	ErrStoppedEarly = errors.New("module stopped by itself")
	// ErrForcedStop is returned by Run when modules were still running
	// when the shutdown timeout ran out; they are abandoned to the end of
	// the process.
	ErrForcedStop = errors.New("forced stop")
)
