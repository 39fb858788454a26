# Pins: the same google provider release that TesseraCT's own deployment (v0.1.1, deployment/) is
# locked to, so the Spanner/GCS/Secret Manager resources behave as upstream tested them.
# .terraform.lock.hcl records the checksums: `terraform providers lock -platform=linux_amd64
# -platform=darwin_arm64` (run where the registry is reachable) writes it, and it is committed.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 6.50.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "= 3.7.2"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "= 4.0.6"
    }
  }

  # Remote state. Bucket and prefix are given at init time (one prefix per tier):
  #   terraform init -backend-config=bucket=PROJECT-ctbench-tfstate -backend-config=prefix=ctbench/TIER
  # The bucket is created by terraform/bootstrap (versioned, uniform access).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
  default_labels = {
    app  = "ctbench"
    tier = var.tier
  }
}
