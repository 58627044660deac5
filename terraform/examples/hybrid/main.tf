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

# The masters have no public address: they reach the package index and the AWS APIs through
# one NAT gateway in a small public subnet.
resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-federation" }
}

resource "aws_subnet" "public" {
  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[0]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 0)

  tags = { Name = "${var.cluster_name}-public" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = { Name = "${var.cluster_name}-public" }
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  domain = "vpc"

  tags = { Name = "${var.cluster_name}-nat" }
}

resource "aws_nat_gateway" "this" {
  subnet_id     = aws_subnet.public.id
  allocation_id = aws_eip.nat.id

  tags       = { Name = "${var.cluster_name}-federation" }
  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "masters" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this.id
  }

  # Reaching the on-prem rack needs a route through your VPN or Direct Connect gateway here.

  tags = { Name = "${var.cluster_name}-masters" }
}

resource "aws_route_table_association" "masters" {
  count = length(aws_subnet.masters)

  subnet_id      = aws_subnet.masters[count.index].id
  route_table_id = aws_route_table.masters.id
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
