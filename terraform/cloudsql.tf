# Cloud SQL keeps a deleted instance's name reserved for up to a week: a fresh suffix per apply lets a
# tier be benchmarked again right after its teardown.
resource "random_id" "mysql" {
  byte_length = 3
}

resource "google_sql_database_instance" "trillian" {
  # checkov:skip=CKV_GCP_6: TLS is required (ssl_mode ENCRYPTED_ONLY) and Trillian verifies the server (--mysql_tls_ca, --mysql_server_name), but Trillian's MySQL client has no client-certificate option, so TRUSTED_CLIENT_CERTIFICATE_REQUIRED would lock it out
  # checkov:skip=CKV_GCP_14: no backups: the database holds only benchmark entries and is destroyed after the run; backup I/O would also disturb the measurement
  # checkov:skip=CKV2_GCP_20: no point-in-time recovery: benchmark entries only, destroyed after the run; binary logging would also add write I/O to the measured system
  name                = "${local.name}-mysql-${random_id.mysql.hex}"
  database_version    = "MYSQL_8_0"
  region              = var.region
  deletion_protection = false # destroyed after every benchmark run

  settings {
    tier              = var.cloudsql_tier
    edition           = "ENTERPRISE"
    availability_type = "ZONAL" # costs.json prices a single-zone instance
    disk_type         = "PD_SSD"
    disk_size         = var.cloudsql_storage_gib
    disk_autoresize   = false # provisioned size is what costs.json charges for

    location_preference {
      zone = var.zone
    }

    ip_configuration {
      ipv4_enabled                                  = false # private IP only
      private_network                               = google_compute_network.vpc.id
      enable_private_path_for_google_cloud_services = false
      ssl_mode                                      = "ENCRYPTED_ONLY"        # TLS required on every connection
      server_ca_mode                                = "GOOGLE_MANAGED_CAS_CA" # server cert carries the instance DNS name, so Trillian can verify it
    }

    backup_configuration {
      enabled            = false
      binary_log_enabled = false
    }

    database_flags {
      name  = "local_infile"
      value = "off"
    }
    database_flags {
      name  = "skip_show_database"
      value = "on"
    }

    insights_config {
      query_insights_enabled = false # its sampling overhead would be charged to Trillian's numbers
    }

    user_labels = {
      app  = "ctbench"
      tier = var.tier
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "trillian" {
  name     = "trillian"
  instance = google_sql_database_instance.trillian.name
}

resource "random_password" "mysql" {
  length  = 32
  special = false # goes into a DSN (user:pw@tcp(...)/db) and Trillian's flag file, which expands '$'
}

resource "google_sql_user" "trillian" {
  name     = "trillian"
  instance = google_sql_database_instance.trillian.name
  host     = "%"
  password = random_password.mysql.result
}
