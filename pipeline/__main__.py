"""``python -m pipeline …``: the ``clic`` command without installing the project (e.g. on a lent GPU machine)."""

from .cli import app

app(prog_name="clic")
