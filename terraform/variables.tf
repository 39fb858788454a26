variable "project_id" {
  description = "Google Cloud project that hosts the benchmark."
  type        = string
}

variable "region" {
  description = "Region for every regional resource (costs.json prices are for this region)."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the (zonal) GKE cluster and the single-zone Cloud SQL instance."
  type        = string
  default     = "us-central1-a"
}

variable "tier" {
  description = "Tier name from costs.json (small, medium, large); part of every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,9}$", var.tier))
    error_message = "tier must be a short lower-case name such as small, medium or large."
  }
}

variable "node_pools" {
  description = "GKE node pools, exactly trillian, tesseract and loadgen, as in costs.json tiers.<tier>.gke.node_pools."
  type = map(object({
    machine_type = string
    nodes        = number
    disk_gib     = number
  }))
  validation {
    condition     = length(setsubtract(toset(["trillian", "tesseract", "loadgen"]), toset(keys(var.node_pools)))) == 0 && length(var.node_pools) == 3
    error_message = "node_pools must have exactly the keys trillian, tesseract and loadgen."
  }
}

variable "cloudsql_tier" {
  description = "Cloud SQL machine tier (costs.json tiers.<tier>.cloudsql.tier)."
  type        = string
}

variable "cloudsql_storage_gib" {
  description = "Cloud SQL provisioned SSD size in GiB (costs.json tiers.<tier>.cloudsql.storage_gib)."
  type        = number
}

variable "spanner_processing_units" {
  description = "Spanner processing units (costs.json tiers.<tier>.spanner.processing_units)."
  type        = number
}

variable "master_authorized_cidrs" {
  description = "CIDR blocks allowed to reach the GKE control plane. GitHub-hosted runners have no fixed address, so the workflow passes 0.0.0.0/0 and relies on IAM; narrow it when you run from a fixed address."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "subnet_cidr" {
  description = "Primary range of the cluster subnet (nodes)."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.20.0.0/16"
}

variable "services_cidr" {
  description = "Secondary range for ClusterIP services."
  type        = string
  default     = "10.30.0.0/20"
}

variable "master_cidr" {
  description = "/28 for the private GKE control plane endpoint peering."
  type        = string
  default     = "172.16.0.32/28"
}
