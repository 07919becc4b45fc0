"""Thin entry for both CLIs: read the deployment spec, build one cloud's app, synth.

``python app.py aws`` is cdk.json's ``app``, ``python app.py gcp`` cdktf.json's. The stage
comes from CDK context (``-c stage=prod``), else the STAGE environment variable, else the
spec file (``deploy.yaml``).

``python app.py init PATH [--spec deploy.yaml] [--force]`` detects the FastAPI app in PATH and
writes the spec's ``app`` section (stacks/detect.py).
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


def synth_gcp() -> None:
    from cdktf import App

    from stacks.gcp_stack import GcpServiceStack
    from stacks.spec import load_spec

    app = App()
    spec = load_spec(stage=os.environ.get("STAGE"))
    GcpServiceStack(app, f"{spec.name}-gcp", spec=spec)
    app.synth()


def init(args: list[str]) -> int:
    from stacks.detect import main as init_main

    return init_main(args)


def main(argv: list[str]) -> None:
    clouds = {"aws": synth_aws, "gcp": synth_gcp}
    if len(argv) >= 2 and argv[1] == "init":
        raise SystemExit(init(argv[2:]))
    if len(argv) != 2 or argv[1] not in clouds:
        raise SystemExit(
            f"usage: python app.py {{{','.join(clouds)}}}\n"
            "       python app.py init PATH [--spec FILE] [--force]"
        )
    from constructs_lib.aws.bundling import BundlingError
    from stacks.spec import SpecError

    try:
        clouds[argv[1]]()
    except (SpecError, BundlingError) as error:
        # The message names the field (or the package) and what to do: no traceback around it.
        raise SystemExit(f"{argv[1]} synth failed: {error}") from None


if __name__ == "__main__":
    main(sys.argv)
