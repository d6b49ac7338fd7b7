"""Exceptions of the pipeline package."""


class PipelineError(Exception):
    """Base of the pipeline's errors (exit code 2 at the CLI)."""

    exit_code = 2
