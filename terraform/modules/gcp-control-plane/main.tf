# Masters of a federation cluster on GCE. Each master gets a reserved internal address first,
# so every address is known before any instance boots (the peers list is written into the
# startup script) and a replaced instance comes back at the same address.

locals {
  server_ids = [for i in range(var.server_count) : "${var.cluster_name}-${i + 1}"]
  zone_of    = [for i in range(var.server_count) : var.zones[i % length(var.zones)]]

  labels = merge(var.labels, {
    "federation-cluster" = var.cluster_name
  })

  create_raft_secret = var.raft_secret_secret_id == null
  create_api_token   = var.api_token_secret_id == null

  raft_secret_id = local.create_raft_secret ? google_secret_manager_secret.raft_secret[0].secret_id : var.raft_secret_secret_id
  api_token_id   = local.create_api_token ? google_secret_manager_secret.api_token[0].secret_id : var.api_token_secret_id
}

# --- secrets: Secret Manager, read by the masters at boot ------------------------------------

resource "google_secret_manager_secret" "raft_secret" {
  count = local.create_raft_secret ? 1 : 0

  project   = var.project_id
  secret_id = "${var.cluster_name}-federation-raft-secret"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "raft_secret" {
  count = local.create_raft_secret ? 1 : 0

  secret      = google_secret_manager_secret.raft_secret[0].id
  secret_data = var.raft_secret

  lifecycle {
    precondition {
      condition     = var.raft_secret != null
      error_message = "Set raft_secret or raft_secret_secret_id."
    }
  }
}

resource "google_secret_manager_secret" "api_token" {
  count = local.create_api_token ? 1 : 0

  project   = var.project_id
  secret_id = "${var.cluster_name}-federation-api-token"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "api_token" {
  count = local.create_api_token ? 1 : 0

  secret      = google_secret_manager_secret.api_token[0].id
  secret_data = var.api_token

  lifecycle {
    precondition {
      condition     = var.api_token != null
      error_message = "Set api_token or api_token_secret_id."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "server" {
  for_each = {
    raft_secret = local.raft_secret_id
    api_token   = local.api_token_id
  }

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.server.email}"
}

# --- network -------------------------------------------------------------------------------

resource "google_compute_address" "server" {
  count = var.server_count

  project      = var.project_id
  region       = var.region
  name         = "${local.server_ids[count.index]}-internal"
  description  = "internal address of federation server ${local.server_ids[count.index]}"
  address_type = "INTERNAL"
  subnetwork   = var.subnetwork
}

resource "google_compute_firewall" "raft" {
  project     = var.project_id
  name        = "${var.cluster_name}-federation-raft"
  network     = var.network
  description = "Raft among the federation masters of ${var.cluster_name} only"
  direction   = "INGRESS"

  allow {
    protocol = "tcp"
    ports    = [tostring(var.raft_port)]
  }

  source_service_accounts = [google_service_account.server.email]
  target_service_accounts = [google_service_account.server.email]
}

resource "google_compute_firewall" "api" {
  count = length(var.api_allowed_cidrs) > 0 ? 1 : 0

  project     = var.project_id
  name        = "${var.cluster_name}-federation-api"
  network     = var.network
  description = "HTTP API of the federation masters of ${var.cluster_name}, from the allowed networks"
  direction   = "INGRESS"

  allow {
    protocol = "tcp"
    ports    = [tostring(var.http_port)]
  }

  source_ranges           = var.api_allowed_cidrs
  target_service_accounts = [google_service_account.server.email]
}

# --- how each master starts ----------------------------------------------------------------

module "bootstrap" {
  source = "../server-bootstrap"

  cluster_name    = var.cluster_name
  servers         = [for i, id in local.server_ids : { id = id, address = google_compute_address.server[i].address }]
  raft_port       = var.raft_port
  http_port       = var.http_port
  package_spec    = var.package_spec
  pip_index_url   = var.pip_index_url
  secret_source   = "gcp-secret-manager"
  raft_secret_ref = local.raft_secret_id
  api_token_ref   = local.api_token_id
  gcp_project     = var.project_id
}

# --- instances -----------------------------------------------------------------------------

resource "google_compute_instance" "server" {
  count = var.server_count

  project      = var.project_id
  zone         = local.zone_of[count.index]
  name         = local.server_ids[count.index]
  machine_type = var.machine_type
  labels       = merge(local.labels, { "federation-role" = "server" })

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.boot_disk_size_gb
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = var.subnetwork
    network_ip = google_compute_address.server[count.index].address
  }

  # The startup script runs at every boot; it converges (installs, fetches, restarts).
  metadata = {
    startup-script         = module.bootstrap.servers[local.server_ids[count.index]].script
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
  }

  service_account {
    email  = google_service_account.server.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  allow_stopping_for_update = true

  depends_on = [
    google_secret_manager_secret_version.raft_secret,
    google_secret_manager_secret_version.api_token,
    google_secret_manager_secret_iam_member.server,
  ]

  lifecycle {
    # A master keeps its disk: a new script or image is rolled out by the operator, one
    # master at a time, not by replacing every instance at once.
    ignore_changes = [metadata["startup-script"], boot_disk[0].initialize_params[0].image]
  }
}
