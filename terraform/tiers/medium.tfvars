# Generated from costs.json tiers.medium by `python -m scripts.gke tfvars`; do not edit by hand.
tier = "medium"

node_pools = {
  trillian  = { machine_type = "e2-standard-4", nodes = 1, disk_gib = 50 }
  tesseract = { machine_type = "e2-standard-4", nodes = 1, disk_gib = 50 }
  loadgen   = { machine_type = "e2-standard-4", nodes = 1, disk_gib = 50 }
}

cloudsql_tier            = "db-custom-4-15360"
cloudsql_storage_gib     = 50
spanner_processing_units = 200
