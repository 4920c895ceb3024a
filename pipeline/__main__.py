"""``python -m pipeline …``: the ``clic`` command without installing the project."""

from .cli import app

app(prog_name="clic")
