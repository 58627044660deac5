# Masters on AWS (three availability zones), agents in an on-prem rack joining them over the
# routed private network.

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  zones = slice(data.aws_availability_zones.available.names, 0, 3)
}

resource "aws_vpc" "this" {
  cidr_block = var.vpc_cidr

  tags = { Name = "${var.cluster_name}-federation" }
}

resource "aws_subnet" "masters" {
  count = length(local.zones)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index + 1)

  tags = { Name = "${var.cluster_name}-masters-${local.zones[count.index]}" }
}

module "control_plane" {
  source = "../../modules/aws-control-plane"

  cluster_name      = var.cluster_name
  subnet_ids        = aws_subnet.masters[*].id
  ami_id            = var.ami_id
  api_allowed_cidrs = [var.vpc_cidr, var.onprem_cidr]
  package_spec      = var.package_spec
  raft_secret       = var.raft_secret
  api_token         = var.api_token
}

module "rack" {
  source = "../../modules/onprem"

  cluster_name     = var.cluster_name
  server_endpoints = module.control_plane.api_endpoints
  api_token        = var.api_token
  package_spec     = var.package_spec

  agents = [for a in var.rack : merge(a, { pool = "onprem", rack = "r1" })]
}
