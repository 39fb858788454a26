# One-time project setup, run by a person with project owner rights (local state, kept by that
# person): APIs, the remote-state bucket, every service account, and Workload Identity Federation
# for the GitHub workflow. Everything the per-run configuration (terraform/) creates is then done
# by the CI service account, which holds only the roles listed in local.ci_roles.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 6.50.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

variable "project_id" {
  description = "Google Cloud project that hosts the benchmark."
  type        = string
}

variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "us-central1"
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflow may impersonate the CI service account."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_ref" {
  description = "The only git ref allowed to run the benchmark workflow."
  type        = string
  default     = "refs/heads/main"
  validation {
    condition     = can(regex("^refs/(heads|tags)/[A-Za-z0-9_./-]+$", var.github_ref)) && !strcontains(var.github_ref, "*")
    error_message = "github_ref must be one full ref such as refs/heads/main (no wildcards)."
  }
}

locals {
  services = [
    "compute.googleapis.com",
    "container.googleapis.com",
    "sqladmin.googleapis.com",
    "servicenetworking.googleapis.com",
    "spanner.googleapis.com",
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
  ]

  # Service accounts of the benchmark itself. Their resource-level grants (bucket, secret, Spanner
  # database) are made in terraform/; only what must be project-wide is granted here.
  system_accounts = {
    trillian  = "Trillian log server, signer and CTFE (Cloud SQL by password over private IP: no Google role)"
    tesseract = "TesseraCT gcp (Spanner database user, log bucket objects, its two secrets)"
    loadgen   = "Load generator Jobs (read the log bucket, write the results bucket)"
  }
  node_roles = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ]

  # What `inv ci --target gke` needs, and nothing that could grant itself more (no
  # resourcemanager.projectIamAdmin, no iam.serviceAccountAdmin, no roles/owner or editor).
  ci_roles = [
    "roles/container.admin",                 # cluster, node pools, and kubectl inside the cluster
    "roles/compute.networkAdmin",            # VPC, subnet, router, NAT, private services range
    "roles/servicenetworking.networksAdmin", # private services connection for Cloud SQL
    "roles/cloudsql.admin",
    "roles/spanner.admin",
    "roles/secretmanager.admin",    # benchmark keys: create secrets and their per-secret grants
    "roles/artifactregistry.admin", # image repository per tier, and pushes to it
    "roles/monitoring.viewer",      # read CPU time series after a run
    "roles/serviceusage.serviceUsageConsumer",
  ]
}

resource "google_project_service" "api" {
  for_each           = toset(local.services)
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------- remote state

resource "google_storage_bucket" "tfstate" {
  # checkov:skip=CKV_GCP_62: access logging for a state bucket touched a few times per run adds a second bucket and nothing that Cloud Audit Logs do not already show
  name                        = "${var.project_id}-ctbench-tfstate"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  versioning {
    enabled = true # recover a state file that a failed run overwrote
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 20
    }
    action {
      type = "Delete"
    }
  }
}

# ---------------------------------------------------------------- service accounts

resource "google_service_account" "nodes" {
  account_id   = "ctbench-nodes"
  display_name = "ctbench GKE nodes (logs, metrics, image pulls)"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset(local.node_roles)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_service_account" "system" {
  for_each     = local.system_accounts
  account_id   = "ctbench-${each.key}"
  display_name = "ctbench ${each.key}"
  description  = each.value
}

# TesseraCT gcp exports its own OpenTelemetry metrics to Cloud Monitoring.
resource "google_project_iam_member" "tesseract_metrics" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.system["tesseract"].email}"
}

# Workload Identity: Kubernetes service account ctbench/<system> acts as ctbench-<system>@.
# The workload pool name is fixed by the project, so this binding exists before any cluster.
resource "google_service_account_iam_member" "workload_identity" {
  for_each           = local.system_accounts
  service_account_id = google_service_account.system[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[ctbench/${each.key}]"
}

resource "google_service_account" "ci" {
  account_id   = "ctbench-ci"
  display_name = "ctbench GitHub Actions benchmark workflow"
}

resource "google_project_iam_member" "ci" {
  for_each = toset(local.ci_roles)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.ci.email}"
}

# Buckets: create/delete the per-tier log and results buckets and set their bucket-level grants,
# and read/delete their objects (force_destroy, results, TesseraCT checkpoint) — a custom role
# instead of project-wide roles/storage.admin.
resource "google_project_iam_custom_role" "ci_buckets" {
  role_id     = "ctbenchBuckets"
  title       = "ctbench bucket lifecycle"
  description = "Create and delete benchmark buckets, set bucket-level IAM, read and delete their objects."
  permissions = [
    "storage.buckets.create",
    "storage.buckets.delete",
    "storage.buckets.get",
    "storage.buckets.list",
    "storage.buckets.update",
    "storage.buckets.getIamPolicy",
    "storage.buckets.setIamPolicy",
    "storage.objects.list",
    "storage.objects.get",
    "storage.objects.delete",
  ]
}

resource "google_project_iam_member" "ci_buckets" {
  project = var.project_id
  role    = google_project_iam_custom_role.ci_buckets.id
  member  = "serviceAccount:${google_service_account.ci.email}"
}

resource "google_storage_bucket_iam_member" "ci_state" {
  bucket = google_storage_bucket.tfstate.name
  role   = "roles/storage.objectAdmin" # read/write/lock the state files; this bucket only
  member = "serviceAccount:${google_service_account.ci.email}"
}

# GKE node pools run as the nodes account: the CI identity may attach it, and only it.
resource "google_service_account_iam_member" "ci_uses_nodes" {
  service_account_id = google_service_account.nodes.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.ci.email}"
}

# ---------------------------------------------------------------- GitHub OIDC

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "ctbench-github"
  display_name              = "ctbench GitHub Actions"
}

resource "google_iam_workload_identity_pool_provider" "github" {
  # checkov:skip=CKV_GCP_125: checkov does not substitute var.github_repository inside the CEL string and then sees no owner/name; the condition below pins sub to repo:OWNER/NAME:ref:REF and also checks repository and ref (tests/test_gke_offline.py asserts its text)
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-oidc"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Only this repository's workflow, and only on the allowed ref, can exchange its token.
  attribute_condition = "assertion.sub == 'repo:${var.github_repository}:ref:${var.github_ref}' && assertion.repository == '${var.github_repository}' && assertion.ref == '${var.github_ref}'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "ci_wif" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}

output "workload_identity_provider" {
  description = "GitHub repository variable GCP_WORKLOAD_IDENTITY_PROVIDER."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "ci_service_account" {
  description = "GitHub repository variable GCP_SERVICE_ACCOUNT."
  value       = google_service_account.ci.email
}

output "state_bucket" {
  description = "GitHub repository variable GCP_TFSTATE_BUCKET."
  value       = google_storage_bucket.tfstate.name
}
