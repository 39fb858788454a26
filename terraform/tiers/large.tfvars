# Generated from costs.json tiers.large by `python -m scripts.gke tfvars`; do not edit by hand.
tier = "large"

node_pools = {
  trillian  = { machine_type = "e2-standard-8", nodes = 2, disk_gib = 100 }
  tesseract = { machine_type = "e2-standard-8", nodes = 2, disk_gib = 100 }
  loadgen   = { machine_type = "e2-standard-8", nodes = 1, disk_gib = 100 }
}

cloudsql_tier            = "db-custom-8-30720"
cloudsql_storage_gib     = 100
spanner_processing_units = 500
