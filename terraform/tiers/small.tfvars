# Generated from costs.json tiers.small by `python -m scripts.gke tfvars`; do not edit by hand.
tier = "small"

node_pools = {
  trillian  = { machine_type = "e2-standard-2", nodes = 1, disk_gib = 50 }
  tesseract = { machine_type = "e2-standard-2", nodes = 1, disk_gib = 50 }
  loadgen   = { machine_type = "e2-standard-2", nodes = 1, disk_gib = 50 }
}

cloudsql_tier            = "db-custom-2-7680"
cloudsql_storage_gib     = 20
spanner_processing_units = 100
