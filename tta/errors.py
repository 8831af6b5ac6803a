"""Errors that reach the user as one readable line (the CLI turns them into exit code 2)."""


class TTAError(Exception):
    """Base class for every error tta raises on purpose: bad input, missing or corrupt files."""


class InputError(TTAError, ValueError):
    """An argument is out of range or malformed (empty prompt, duration <= 0, NaN guidance...)."""


class ModelLoadError(TTAError, OSError):
    """A model folder or weight file is missing, incomplete or corrupt."""
