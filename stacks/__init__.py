"""One stack per cloud, composed from constructs_lib and driven by the deployment spec."""
