# What `rotatord report` needs, read rights only (a test runs a report under exactly this
# policy, and removes each grant in turn expecting the preflight to name it), for KV v2
# mount "secret" and path prefix "webhookco/". Replace both to match vault.kv.mount and
# your destinations' vault_path values:
#
#   vault policy write rotatord-report deploy/vault/rotatord-report-policy.hcl
#
# The stored record: the key id, when it was stored, and rotatord's history of earlier keys.
path "secret/data/webhookco/*" {
  capabilities = ["read"]
}

# KV v2 version metadata: which versions are kept, deleted or destroyed, and whether
# rotatord marked the secret deleted_at_provider.
path "secret/metadata/webhookco/*" {
  capabilities = ["read"]
}

# The preflight asks which rights the token has.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Token upkeep: look up its own token (also in Vault's default policy).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Optional, for `report --sign rotatord-report`: sign the report's digest with a transit key
# (create one with: vault secrets enable transit; vault write -f transit/keys/rotatord-report type=ed25519).
# `rotatord report verify --key rotatord-report` needs update on transit/verify/rotatord-report.
path "transit/sign/rotatord-report" {
  capabilities = ["update"]
}

# With KV v1 instead, the path is:
#   path "secret/webhookco/*" { capabilities = ["read"] }
