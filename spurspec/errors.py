"""Error types the library raises and the CLI turns into one-line messages and exit codes.

Library code raises these (never calls sys.exit); `spurspec.cli.main` maps them to exit codes.
"""


class SpurspecError(Exception):
    """Base for every error a user can cause or fix; printed as one line, no traceback."""

    exit_code = 1


class InputError(SpurspecError):
    """Bad input data: a file, row or value the user supplied is wrong."""

    exit_code = 2


class ConfigError(SpurspecError):
    """Bad settings: an unknown key, a bad value, a bad combination of options."""

    exit_code = 2


class ArtefactError(SpurspecError):
    """An artefact a stage needs is missing, stale, or does not match its schema."""

    exit_code = 3


class ExistsError(SpurspecError):
    """An output already exists and the user did not ask to overwrite or resume it."""

    exit_code = 4
