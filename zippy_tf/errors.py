"""User-facing errors: one line that names the problem and the fix."""


class UserError(Exception):
    """A problem with the user's input (flags, files, shapes). The CLI prints it as one line and exits 2."""


__all__ = ["UserError"]
