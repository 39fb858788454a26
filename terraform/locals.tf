locals {
  name = "ctb-${var.tier}"

  # Pools that run a system under test are tainted: only that system's pods (which tolerate the
  # taint) land there. The loadgen pool is NOT tainted: GKE's own kube-system pods (kube-dns,
  # metrics agents) need somewhere to run, and putting them beside the load generators keeps them
  # off the measured systems' nodes. The load generators' CPU is recorded, so this is visible.
  tainted_pools = toset(["trillian", "tesseract"])

  # Service accounts are created by terraform/bootstrap (so the CI identity needs no IAM admin
  # role); this configuration only binds them to the resources they use.
  sa = {
    nodes     = "ctbench-nodes@${var.project_id}.iam.gserviceaccount.com"
    trillian  = "ctbench-trillian@${var.project_id}.iam.gserviceaccount.com"
    tesseract = "ctbench-tesseract@${var.project_id}.iam.gserviceaccount.com"
    loadgen   = "ctbench-loadgen@${var.project_id}.iam.gserviceaccount.com"
  }
}
