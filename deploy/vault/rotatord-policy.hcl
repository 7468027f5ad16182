# The least privilege rotatord needs, and nothing more (a test removes each grant in turn and
# expects `rotatord check --online` to name it), for KV v2 mount "secret" and path prefix "webhookco/".
# Replace both to match vault.kv.mount and your destinations' vault_path values:
#
#   vault policy write rotatord deploy/vault/rotatord-policy.hcl
#
# Write and read back the secrets (read: the read-back check and the stale-write check).
path "secret/data/webhookco/*" {
  capabilities = ["create", "update", "read"]
}

# custom_metadata (managed_by, destination_id) is written with PATCH, once per path.
path "secret/metadata/webhookco/*" {
  capabilities = ["patch"]
}

# Optional (the one grant rotatord works without): at start, one LIST of the folder tells
# which secrets exist, so a fleet of thousands reads only those. Without it each is read.
path "secret/metadata/webhookco" {
  capabilities = ["list"]
}

# coordination.mode vault: one lease entry per destination under coordination.vault.path
# (default rotatord/leases) on a KV v2 mount, taken, renewed and released with check-and-set
# (create the first time, update after; read to see who holds it). The metadata read tells a
# deleted lease from one never written. Leave these two out with mode local or none.
path "secret/data/rotatord/leases/*" {
  capabilities = ["create", "update", "read"]
}
path "secret/metadata/rotatord/leases/*" {
  capabilities = ["read"]
}

# rotatord reads the mount's KV version at start (sys/internal/ui/mounts/secret), which Vault
# allows to any token with a right on the mount: no grant of its own.
#
# `rotatord check --online` and the start-up preflight ask which rights the token has.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Token upkeep: look up and renew its own token (also in Vault's default policy).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# With KV v1 instead, the paths are:
#   path "secret/webhookco/*" { capabilities = ["create", "update", "read"] }
