"""Thin entry for both CLIs: read the deployment spec, build one cloud's app, synth.

``python app.py aws`` is cdk.json's ``app``. The stage comes from context
(``-c stage=prod``), else the STAGE environment variable, else the spec file.
"""

from __future__ import annotations

import os
import sys


def synth_aws() -> None:
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    from stacks.aws_stack import AwsServiceStack
    from stacks.spec import load_spec

    app = cdk.App()
    # cdk-nag: any unsuppressed AwsSolutions or Serverless finding fails the synth.
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    cdk.Aspects.of(app).add(ServerlessChecks())
    context = app.node.get_all_context()
    spec = load_spec(context=context, stage=context.get("stage") or os.environ.get("STAGE"))
    AwsServiceStack(app, f"{spec.name}-aws", spec=spec)
    app.synth()


def main(argv: list[str]) -> None:
    clouds = {"aws": synth_aws}
    if len(argv) != 2 or argv[1] not in clouds:
        raise SystemExit(f"usage: python app.py {{{','.join(clouds)}}}")
    clouds[argv[1]]()


if __name__ == "__main__":
    main(sys.argv)
