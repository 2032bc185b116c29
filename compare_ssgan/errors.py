"""Errors a user can cause and fix: main prints their message alone, without a traceback."""


class UserError(Exception):
    """A mistake in the command, gin config, data or model_dir; the message names the fix."""


class NaNLossError(UserError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    def __init__(self, message, step=None):
        super().__init__(message)
        self.step = step  # the generator step whose loss was not finite
