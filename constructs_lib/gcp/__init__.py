"""Google Cloud constructs (CDK for Terraform).

Every cdktf import stays under here and in stacks/gcp_stack.py, so a move to CDK Terrain
(cdktn) is mechanical.
"""
