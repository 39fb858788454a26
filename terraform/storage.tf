# TesseraCT's tiles, entry bundles and checkpoint.
resource "google_storage_bucket" "log" {
  # checkov:skip=CKV_GCP_62: access logging would write a log object per tile write into another bucket; Cloud Audit Logs cover access
  # checkov:skip=CKV_GCP_78: no versioning: TesseraCT rewrites partial tiles and the checkpoint constantly; old versions would only cost money in a benchmark
  name                        = "${var.project_id}-${local.name}-log"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # teardown deletes the tiles with the bucket
  labels = {
    app  = "ctbench"
    tier = var.tier
  }
}

# Load generator results (one JSON object per Job index), read back by the harness.
resource "google_storage_bucket" "results" {
  # checkov:skip=CKV_GCP_62: a handful of result objects per run; Cloud Audit Logs cover access
  # checkov:skip=CKV_GCP_78: result objects are written once and copied into the repository by the harness
  name                        = "${var.project_id}-${local.name}-results"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels = {
    app  = "ctbench"
    tier = var.tier
  }
}

# Bucket-level grants only: no system holds a project-wide storage role.
resource "google_storage_bucket_iam_member" "tesseract_log" {
  bucket = google_storage_bucket.log.name
  role   = "roles/storage.objectUser" # read, write and delete objects (garbage collection of partial tiles); no bucket or IAM admin
  member = "serviceAccount:${local.sa.tesseract}"
}

resource "google_storage_bucket_iam_member" "loadgen_log_read" {
  bucket = google_storage_bucket.log.name
  role   = "roles/storage.objectViewer" # the native TesseraCT hammer reads tiles (gs:// log URL)
  member = "serviceAccount:${local.sa.loadgen}"
}

resource "google_storage_bucket_iam_member" "loadgen_results_write" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${local.sa.loadgen}"
}
