"""The entry-cost baseline: tests/examples/hello's app behind bare Mangum, the one line a
hand-written Lambda handler needs (``bare_mangum.handler``)."""

from main import app  # type: ignore[import-not-found]  # the app beside it in the bundle
from mangum import Mangum

handler = Mangum(app, lifespan="off")
