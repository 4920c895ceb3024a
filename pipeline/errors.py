"""The one exception type the pipeline raises for expected failures."""


class PipelineError(Exception):
    """An expected failure (bad input, failed check): the CLI prints it on one line, exit 2."""
