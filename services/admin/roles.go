package admin

// Role is what an authenticated caller may do. The roles are the design's:
// each grants a set of permissions, and admin grants all of them.
type Role string

// The roles.
const (
	// RoleViewer sees metadata: search, a message's journey without
	// content, dead letters, jobs, destinations, interfaces.
	RoleViewer Role = "viewer"
	// RoleAnalyst is a viewer who may also read message content.
	RoleAnalyst Role = "analyst"
	// RoleOperator is a viewer who may also replay, discard dead letters,
	// pause, resume and reset destinations.
	RoleOperator Role = "operator"
	// RoleAuditor is a viewer who may also read the audit trail.
	RoleAuditor Role = "auditor"
	// RoleAdmin may do everything, including minting tokens.
	RoleAdmin Role = "admin"
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{RoleViewer, RoleAnalyst, RoleOperator, RoleAuditor, RoleAdmin}

// Permission is one thing an endpoint needs.
type Permission string

// The permissions endpoints check.
const (
	PermMetadata Permission = "metadata"
	PermContent  Permission = "content"
	PermReplay   Permission = "replay"
	PermControl  Permission = "control"
	PermAudit    Permission = "audit"
	PermTokens   Permission = "tokens"
)

var grants = map[Role][]Permission{
	RoleViewer:   {PermMetadata},
	RoleAnalyst:  {PermMetadata, PermContent},
	RoleOperator: {PermMetadata, PermReplay, PermControl},
	RoleAuditor:  {PermMetadata, PermAudit},
	RoleAdmin:    {PermMetadata, PermContent, PermReplay, PermControl, PermAudit, PermTokens},
}

// Allows reports whether r grants p. An unknown role grants nothing.
func (r Role) Allows(p Permission) bool {
	for _, g := range grants[r] {
		if g == p {
			return true
		}
	}
	return false
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	_, ok := grants[r]
	return ok
}
