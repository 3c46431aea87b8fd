"""User-facing errors: one line that names the problem and the fix."""


class UserError(ValueError):
    """A problem with the user's input (arguments, files, shapes): a ``ValueError`` whose one-line message names
    the problem and the fix in Python argument names. The CLI translates those into its flags, prints the line and
    exits 2."""


__all__ = ["UserError"]
