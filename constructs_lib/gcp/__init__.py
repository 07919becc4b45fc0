"""Google Cloud constructs (CDK for Terraform). Every cdktf import stays under here and stacks/gcp_stack.py."""
