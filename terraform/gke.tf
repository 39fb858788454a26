resource "google_container_cluster" "bench" {
  # checkov:skip=CKV_GCP_12: the network_policy block configures Calico and is rejected with ADVANCED_DATAPATH; Dataplane V2 enforces NetworkPolicy itself
  # checkov:skip=CKV_GCP_66: no Binary Authorization: the images are built by ko in the same workflow run that deploys them, with no attestor to sign them; they are pulled from this tier's own Artifact Registry repository
  # checkov:skip=CKV_GCP_65: no human users: only the CI service account (Workload Identity Federation) talks to this cluster, so there are no Google Groups to bind
  name     = "${local.name}-gke"
  location = var.zone # zonal: one zone, like the single-zone Cloud SQL instance priced in costs.json

  # Node pools are managed below; the default pool is removed right after creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = false # a benchmark cluster is destroyed after every run

  network         = google_compute_network.vpc.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }
  datapath_provider           = "ADVANCED_DATAPATH" # Dataplane V2: network policy enforcement built in
  enable_intranode_visibility = true

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false # the runner reaches the API server over its public endpoint, limited below
    master_ipv4_cidr_block  = var.master_cidr
    master_global_access_config {
      enabled = false
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "runner"
      }
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  release_channel {
    channel = "REGULAR"
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes = true
  enable_legacy_abac    = false

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }
  monitoring_config {
    # Container CPU/memory (kubernetes.io/container/*) come from the system components.
    enable_components = ["SYSTEM_COMPONENTS"]
  }

  resource_labels = {
    app  = "ctbench"
    tier = var.tier
  }

  node_config {
    # Only shapes the short-lived default pool.
    service_account = local.sa.nodes
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}

resource "google_container_node_pool" "pool" {
  for_each = var.node_pools

  name       = each.key
  cluster    = google_container_cluster.bench.id
  location   = var.zone
  node_count = each.value.nodes

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = each.value.machine_type
    disk_size_gb    = each.value.disk_gib
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    service_account = local.sa.nodes
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"] # access is limited by the SA's roles

    labels = {
      "ctbench-pool" = each.key
    }

    dynamic "taint" {
      for_each = contains(local.tainted_pools, each.key) ? [each.key] : []
      content {
        key    = "ctbench-pool"
        value  = taint.value
        effect = "NO_SCHEDULE"
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    metadata = {
      disable-legacy-endpoints = "true"
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: customer-managed keys need a KMS key ring that cannot be deleted at teardown; the images are rebuilt from public source every run
  repository_id = "${local.name}-images"
  location      = var.region
  format        = "DOCKER"
  description   = "ko-built upstream binaries and the harness's load generator image for this tier."
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${local.sa.nodes}"
}
