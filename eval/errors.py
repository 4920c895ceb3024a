"""The one exception type for bad evaluation input."""


class EvalInputError(ValueError):
    """Unusable input (image, folder, submission layout, CSV); the message is one line naming the path."""
