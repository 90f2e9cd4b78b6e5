# CyNode example policy (Rego v1). Try it: `cynode policy test docs/examples/policy.rego INPUT.json`.
# CyNode evaluates `data.cynode.decision`, which must be one of
#   {"allow": true}
#   {"deny": "the reason shown to the user"}
#   {"require_approval": {"approvers": ["U123", "role:approver"], "count": 2, "reason": "shown on the card"}}
# The input: principal {id, install, platform, source, user}, roles (["member"]), channel, command ("run"),
# job (the canonical job spec: kind, template, image, argv, env names, network, gpu, limits), time (RFC 3339),
# hour_utc (0–23) and weekday ("monday"…).
package cynode

# The first matching branch of the chain decides.
decision := {"deny": "viewers cannot run jobs"} if {
	"viewer" in input.roles
} else := {"deny": "GPU jobs are not started between 00:00 and 06:00 UTC"} if {
	input.job.gpu
	input.hour_utc < 6
} else := {"require_approval": {"approvers": ["role:approver"], "count": 2, "reason": "GPU job by a member"}} if {
	input.job.gpu
	not "admin" in input.roles
} else := {"require_approval": {"approvers": ["role:approver"], "count": 1, "reason": "network access from #prod"}} if {
	input.job.network
	input.channel == "CPROD"
} else := {"allow": true}
