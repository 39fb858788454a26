# Read by scripts/gke.py with `terraform output -json`; every name here is used there.
output "cluster_name" {
  value = google_container_cluster.bench.name
}

output "cluster_location" {
  value = google_container_cluster.bench.location
}

output "image_repository" {
  description = "KO_DOCKER_REPO and the load generator image's repository."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "mysql_private_ip" {
  value = google_sql_database_instance.trillian.private_ip_address
}

output "mysql_server_name" {
  description = "DNS name in the Cloud SQL server certificate (Trillian --mysql_server_name)."
  value       = trimsuffix(google_sql_database_instance.trillian.dns_name, ".")
}

output "mysql_server_ca_pem" {
  value = google_sql_database_instance.trillian.server_ca_cert[0].cert
}

output "mysql_database" {
  value = google_sql_database.trillian.name
}

output "mysql_user" {
  value = google_sql_user.trillian.name
}

output "mysql_password" {
  value     = random_password.mysql.result
  sensitive = true
}

output "cloudsql_instance" {
  value = google_sql_database_instance.trillian.name
}

output "spanner_instance" {
  value = google_spanner_instance.tesseract.name
}

output "spanner_db_path" {
  value = "projects/${var.project_id}/instances/${google_spanner_instance.tesseract.name}/databases/${google_spanner_database.tesseract.name}"
}

output "spanner_antispam_db_path" {
  value = "projects/${var.project_id}/instances/${google_spanner_instance.tesseract.name}/databases/${google_spanner_database.antispam.name}"
}

output "log_bucket" {
  value = google_storage_bucket.log.name
}

output "results_bucket" {
  value = google_storage_bucket.results.name
}

output "tesseract_private_key_secret_version" {
  description = "projects/P/secrets/S/versions/N with N numeric."
  value       = google_secret_manager_secret_version.key["tesseract-signer-private"].name
}

output "tesseract_public_key_secret_version" {
  value = google_secret_manager_secret_version.key["tesseract-signer-public"].name
}

output "tesseract_public_key_pem" {
  value = tls_private_key.tesseract.public_key_pem
}

output "ctfe_private_key_pem" {
  value     = tls_private_key.ctfe.private_key_pem
  sensitive = true
}

output "ctfe_public_key_pem" {
  value = tls_private_key.ctfe.public_key_pem
}

output "service_accounts" {
  value = local.sa
}
