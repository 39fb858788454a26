# Signing keys. tls_private_key keeps the private keys in the Terraform state (GCS, encrypted at
# rest, readable only by the CI identity): acceptable for short-lived benchmark logs, never for a
# production log.
resource "tls_private_key" "tesseract" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256" # private_key_pem is SEC1 "EC PRIVATE KEY", the form TesseraCT's gcp signer parses
}

resource "tls_private_key" "ctfe" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

locals {
  secrets = {
    "tesseract-signer-private" = { data = tls_private_key.tesseract.private_key_pem, reader = local.sa.tesseract }
    "tesseract-signer-public"  = { data = tls_private_key.tesseract.public_key_pem, reader = local.sa.tesseract }
    "ctfe-signer-private"      = { data = tls_private_key.ctfe.private_key_pem, reader = null }
  }
}

resource "google_secret_manager_secret" "key" {
  for_each  = local.secrets
  secret_id = "${local.name}-${each.key}"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
  labels = {
    app  = "ctbench"
    tier = var.tier
  }
}

# Each version's `name` ends in a NUMERIC version (…/versions/1): TesseraCT rejects `latest`
# because it compares the name it asked for with the name Secret Manager answers with.
resource "google_secret_manager_secret_version" "key" {
  for_each    = local.secrets
  secret      = google_secret_manager_secret.key[each.key].id
  secret_data = each.value.data
}

resource "google_secret_manager_secret_iam_member" "reader" {
  for_each  = { for k, v in local.secrets : k => v if v.reader != null }
  secret_id = google_secret_manager_secret.key[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.reader}"
}
