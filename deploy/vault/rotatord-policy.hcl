# The least privilege rotatord needs, for KV v2 mount "secret" and path prefix "webhookco/".
# Replace both to match vault.kv.mount and your destinations' vault_path values:
#
#   vault policy write rotatord deploy/vault/rotatord-policy.hcl
#
# Write and read back the secrets (read: the read-back check and the stale-write check).
path "secret/data/webhookco/*" {
  capabilities = ["create", "update", "read"]
}

# custom_metadata (managed_by, key_id, rotated_at) is written with PATCH.
path "secret/metadata/webhookco/*" {
  capabilities = ["patch", "read"]
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

# Detect the KV version of the mount (when vault.kv.version is not set).
path "sys/internal/ui/mounts/secret" {
  capabilities = ["read"]
}

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
