# Masters of a federation cluster on EC2. Each master gets a fixed private address computed
# from its subnet's CIDR block, so every address is known before any instance boots (the
# peers list is written into user data) and a replaced instance comes back at the same
# address, keeping the Raft membership intact.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_subnet" "selected" {
  count = length(var.subnet_ids)
  id    = var.subnet_ids[count.index]
}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  vpc_id     = data.aws_subnet.selected[0].vpc_id

  server_ids = [for i in range(var.server_count) : "${var.cluster_name}-${i + 1}"]

  # Server i goes to subnet i mod n, at host number server_host_number + i div n.
  placements = [
    for i in range(var.server_count) : {
      subnet_id = var.subnet_ids[i % length(var.subnet_ids)]
      address = cidrhost(
        data.aws_subnet.selected[i % length(var.subnet_ids)].cidr_block,
        var.server_host_number + floor(i / length(var.subnet_ids)),
      )
    }
  ]

  common_tags = merge(var.tags, {
    "federation:cluster" = var.cluster_name
  })

  create_raft_secret = var.raft_secret_ssm_parameter == null
  create_api_token   = var.api_token_ssm_parameter == null

  raft_secret_parameter = local.create_raft_secret ? aws_ssm_parameter.raft_secret[0].name : var.raft_secret_ssm_parameter
  api_token_parameter   = local.create_api_token ? aws_ssm_parameter.api_token[0].name : var.api_token_ssm_parameter

  parameter_arns = [
    for name in [local.raft_secret_parameter, local.api_token_parameter] :
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(name, "/")}"
  ]
}

# --- secrets: SecureString parameters, read by the masters at boot -----------------------

resource "aws_ssm_parameter" "raft_secret" {
  count = local.create_raft_secret ? 1 : 0

  name        = "/federation/${var.cluster_name}/raft-secret"
  description = "Raft transport secret of federation cluster ${var.cluster_name}"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.raft_secret
  tags        = local.common_tags

  lifecycle {
    precondition {
      condition     = var.raft_secret != null
      error_message = "Set raft_secret or raft_secret_ssm_parameter."
    }
  }
}

resource "aws_ssm_parameter" "api_token" {
  count = local.create_api_token ? 1 : 0

  name        = "/federation/${var.cluster_name}/api-token"
  description = "API bearer token of federation cluster ${var.cluster_name}"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.api_token
  tags        = local.common_tags

  lifecycle {
    precondition {
      condition     = var.api_token != null
      error_message = "Set api_token or api_token_ssm_parameter."
    }
  }
}

# --- network -------------------------------------------------------------------------------

resource "aws_security_group" "servers" {
  name        = "${var.cluster_name}-federation-servers"
  description = "federation masters of cluster ${var.cluster_name}"
  vpc_id      = local.vpc_id

  ingress {
    description = "Raft among the masters only"
    protocol    = "tcp"
    from_port   = var.raft_port
    to_port     = var.raft_port
    self        = true
  }

  dynamic "ingress" {
    for_each = length(var.api_allowed_cidrs) > 0 ? [1] : []
    content {
      description = "HTTP API from the allowed networks"
      protocol    = "tcp"
      from_port   = var.http_port
      to_port     = var.http_port
      cidr_blocks = var.api_allowed_cidrs
    }
  }

  egress {
    description = "Package index, AWS APIs and agents"
    protocol    = "-1"
    from_port   = 0
    to_port     = 0
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(local.common_tags, { Name = "${var.cluster_name}-federation-servers" })
}

# --- how each master starts ----------------------------------------------------------------

module "bootstrap" {
  source = "../server-bootstrap"

  cluster_name    = var.cluster_name
  servers         = [for i, id in local.server_ids : { id = id, address = local.placements[i].address }]
  raft_port       = var.raft_port
  http_port       = var.http_port
  package_spec    = var.package_spec
  pip_index_url   = var.pip_index_url
  secret_source   = "aws-ssm"
  raft_secret_ref = local.raft_secret_parameter
  api_token_ref   = local.api_token_parameter
  aws_region      = local.region
}

# --- instances -----------------------------------------------------------------------------

resource "aws_instance" "server" {
  count = var.server_count

  ami                  = var.ami_id
  instance_type        = var.instance_type
  key_name             = var.key_name
  iam_instance_profile = aws_iam_instance_profile.server.name
  user_data            = module.bootstrap.servers[local.server_ids[count.index]].script

  subnet_id              = local.placements[count.index].subnet_id
  private_ip             = local.placements[count.index].address
  vpc_security_group_ids = [aws_security_group.servers.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_size_gib
    encrypted   = true
    kms_key_id  = var.kms_key_arn
    tags        = merge(local.common_tags, { Name = local.server_ids[count.index] })
  }

  tags = merge(local.common_tags, {
    Name                = local.server_ids[count.index]
    "federation:role"   = "server"
    "federation:server" = local.server_ids[count.index]
  })

  lifecycle {
    # A master keeps its data directory: a new user data (a new package pin) is rolled out
    # by the operator, one master at a time, not by replacing every instance at once.
    ignore_changes = [user_data, ami]
  }
}
