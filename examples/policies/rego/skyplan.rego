# Review rules for skyplan plans, written as for Terraform plans (conftest, OPA, regopy).
#
#   skyplan plan --out links.plan && skyplan show links.plan --json > plan.json
#   conftest test --policy examples/policies/rego plan.json
#
# `deny` stops the change; `warn` is shown to the reviewer.
package main

import rego.v1

managed_clusters contains rc if {
	some rc in input.resource_changes
	rc.mode == "managed"
	rc.type == "cluster"
}

# Peers dial clusters on WireGuard's port: another port needs a firewall change first.
deny contains msg if {
	some rc in managed_clusters
	some action in rc.change.actions
	action in {"create", "update"}
	endpoint := rc.change.after.endpoint
	is_string(endpoint)
	not endswith(endpoint, ":51820")
	msg := sprintf("%s: endpoint %s is not on port 51820", [rc.address, endpoint])
}

# Removing a cluster cuts every link it has: that is done by hand, not in review.
deny contains msg if {
	some rc in managed_clusters
	rc.change.actions == ["delete"]
	msg := sprintf("%s would be destroyed (%s)", [rc.address, object.get(rc, "action_reason", "destroy")])
}

# An in-place update never changes a cluster's key: a new key is a replace, and says so.
deny contains msg if {
	some rc in managed_clusters
	rc.change.actions == ["update"]
	not rc.change.after.public_key == rc.change.before.public_key
	msg := sprintf("%s: public key changes in an in-place update", [rc.address])
}

# A replaced cluster gets a new key, and every peer's config changes with it.
warn contains msg if {
	some rc in managed_clusters
	rc.change.actions == ["delete", "create"]
	msg := sprintf("%s gets a new key (%s): %s", [rc.address, object.get(rc, "action_reason", "replace"), object.get(rc, "reason", "")])
}
