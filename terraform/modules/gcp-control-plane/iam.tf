# Least privilege for the masters: read their two secrets (see main.tf), write logs and
# metrics, and let the GCP provider plugin create and delete agent instances. GCE IAM
# conditions cannot test labels, so instance and disk rights are limited by name prefix;
# the plugin itself only ever touches instances labelled federation-cluster = cluster_name.

resource "google_service_account" "server" {
  project      = var.project_id
  account_id   = "fed-${substr(var.cluster_name, 0, 19)}-srv"
  display_name = "federation masters of ${var.cluster_name}"
}

locals {
  member      = "serviceAccount:${google_service_account.server.email}"
  role_prefix = "federation_${replace(var.cluster_name, "-", "_")}"
}

resource "google_project_iam_custom_role" "agent_instances" {
  project     = var.project_id
  role_id     = "${local.role_prefix}_agent_instances"
  title       = "federation ${var.cluster_name}: manage agent instances"
  description = "Create, label and delete the agent instances and their boot disks."
  permissions = [
    "compute.disks.create",
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.setLabels",
    "compute.instances.setMetadata",
    "compute.instances.setServiceAccount",
    "compute.instances.setTags",
  ]
}

resource "google_project_iam_custom_role" "capacity_reader" {
  project     = var.project_id
  role_id     = "${local.role_prefix}_capacity_reader"
  title       = "federation ${var.cluster_name}: read capacity"
  description = "List instances and machine types, follow zone operations, use images and subnetworks for launches."
  permissions = [
    "compute.images.get",
    "compute.images.useReadOnly",
    "compute.instances.list",
    "compute.machineTypes.get",
    "compute.machineTypes.list",
    "compute.subnetworks.use",
    "compute.zoneOperations.get",
    "compute.zones.list",
  ]
}

resource "google_project_iam_member" "agent_instances" {
  project = var.project_id
  role    = google_project_iam_custom_role.agent_instances.id
  member  = local.member

  condition {
    title       = "federation-agents-only"
    description = "Only instances and disks named ${var.agent_name_prefix}*"
    expression  = <<-CEL
      (resource.type == "compute.googleapis.com/Instance" && resource.name.extract("/instances/{name}").startsWith("${var.agent_name_prefix}")) ||
      (resource.type == "compute.googleapis.com/Disk" && resource.name.extract("/disks/{name}").startsWith("${var.agent_name_prefix}"))
    CEL
  }
}

resource "google_project_iam_member" "capacity_reader" {
  project = var.project_id
  role    = google_project_iam_custom_role.capacity_reader.id
  member  = local.member
}

resource "google_project_iam_member" "telemetry" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project_id
  role    = each.value
  member  = local.member
}

resource "google_service_account_iam_member" "attach_agent_accounts" {
  for_each = toset(var.agent_service_account_emails)

  service_account_id = "projects/${var.project_id}/serviceAccounts/${each.value}"
  role               = "roles/iam.serviceAccountUser"
  member             = local.member
}
