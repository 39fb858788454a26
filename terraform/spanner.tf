resource "google_spanner_instance" "tesseract" {
  name                         = "${local.name}-spanner"
  config                       = "regional-${var.region}"
  display_name                 = "${local.name} TesseraCT"
  processing_units             = var.spanner_processing_units
  edition                      = "STANDARD"
  default_backup_schedule_type = "NONE"
  force_destroy                = true
  labels = {
    app  = "ctbench"
    tier = var.tier
  }
}

# No DDL here: TesseraCT creates its own tables at start-up.
resource "google_spanner_database" "tesseract" {
  # checkov:skip=CKV_GCP_93: customer-managed keys need a KMS key ring that cannot be deleted at teardown; the database holds only benchmark entries
  # checkov:skip=CKV_GCP_119: no deletion protection: the database is destroyed after every benchmark run
  # checkov:skip=CKV_GCP_120: no drop protection, for the same reason
  instance            = google_spanner_instance.tesseract.name
  name                = "tesseract"
  deletion_protection = false
}

# Deduplication (antispam) database, as in TesseraCT's own GCP deployment.
resource "google_spanner_database" "antispam" {
  # checkov:skip=CKV_GCP_93: customer-managed keys need a KMS key ring that cannot be deleted at teardown; the database holds only benchmark entries
  # checkov:skip=CKV_GCP_119: no deletion protection: the database is destroyed after every benchmark run
  # checkov:skip=CKV_GCP_120: no drop protection, for the same reason
  instance            = google_spanner_instance.tesseract.name
  name                = "antispam"
  deletion_protection = false
}

resource "google_spanner_database_iam_member" "tesseract" {
  for_each = {
    log      = google_spanner_database.tesseract.name
    antispam = google_spanner_database.antispam.name
  }
  instance = google_spanner_instance.tesseract.name
  database = each.value
  role     = "roles/spanner.databaseUser"
  member   = "serviceAccount:${local.sa.tesseract}"
}
