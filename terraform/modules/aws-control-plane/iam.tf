# Least privilege for the masters: read their two secrets, and let the AWS provider plugin
# launch, tag, and terminate agent instances of this cluster only (federation:cluster tag).

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "Ec2AssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  ec2_arn        = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  agent_vpc_arns = [for id in distinct(concat([local.vpc_id], var.agent_vpc_ids)) : "${local.ec2_arn}:vpc/${id}"]
}

data "aws_iam_policy_document" "server" {
  statement {
    sid    = "ReadClusterSecrets"
    effect = "Allow"
    actions = [
      "ssm:GetParameter",
    ]
    resources = local.parameter_arns
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptClusterSecrets"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid    = "DescribeCapacity"
    effect = "Allow"
    # Describe calls support no resource-level permissions.
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceStatus",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeInstances",
      "ec2:DescribeSpotPriceHistory",
      "ec2:DescribeSubnets",
      "ec2:DescribeTags",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "LaunchClusterTaggedInstances"
    effect    = "Allow"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/federation:cluster"
      values   = [var.cluster_name]
    }
  }

  statement {
    # Created by the same launch only: the instance statement above gates the call.
    sid     = "LaunchWithVolumesAndInterfaces"
    effect  = "Allow"
    actions = ["ec2:RunInstances"]
    resources = [
      "${local.ec2_arn}:volume/*",
      "${local.ec2_arn}:network-interface/*",
      "${local.ec2_arn}:spot-instances-request/*",
    ]
  }

  statement {
    sid     = "LaunchIntoClusterVpc"
    effect  = "Allow"
    actions = ["ec2:RunInstances"]
    resources = [
      "${local.ec2_arn}:subnet/*",
      "${local.ec2_arn}:security-group/*",
    ]

    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values   = local.agent_vpc_arns
    }
  }

  statement {
    sid     = "LaunchFromImages"
    effect  = "Allow"
    actions = ["ec2:RunInstances"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}::image/*",
      "${local.ec2_arn}:key-pair/*",
    ]
  }

  statement {
    sid     = "TagOnLaunchOnly"
    effect  = "Allow"
    actions = ["ec2:CreateTags"]
    resources = [
      "${local.ec2_arn}:instance/*",
      "${local.ec2_arn}:volume/*",
      "${local.ec2_arn}:network-interface/*",
      "${local.ec2_arn}:spot-instances-request/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  statement {
    sid       = "TerminateClusterInstances"
    effect    = "Allow"
    actions   = ["ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/federation:cluster"
      values   = [var.cluster_name]
    }
  }

  dynamic "statement" {
    for_each = length(var.agent_role_arns) > 0 ? [1] : []
    content {
      sid       = "PassAgentRoles"
      effect    = "Allow"
      actions   = ["iam:PassRole"]
      resources = var.agent_role_arns

      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["ec2.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "server" {
  name_prefix        = "${var.cluster_name}-fed-server-"
  description        = "federation masters of cluster ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "server" {
  name   = "federation-server"
  role   = aws_iam_role.server.id
  policy = data.aws_iam_policy_document.server.json
}

resource "aws_iam_instance_profile" "server" {
  name_prefix = "${var.cluster_name}-fed-server-"
  role        = aws_iam_role.server.name
  tags        = local.common_tags
}
