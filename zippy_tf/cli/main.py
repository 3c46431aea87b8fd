"""``zippy-tf <verb> --flags``: a thin dispatcher over absl flags.

Each verb lives in its own module with ``HELP`` (one line), ``define_flags(fv)`` and ``main(fv, args) -> dict``, and
optionally ``ARGUMENT_FLAGS``, {library argument: flag} for the arguments whose flag has another name.
For verbs with sub-verbs (``train zippypoint``, ``eval hpatches``) ``main`` receives the sub-verb as ``name``.
The dict is printed as one JSON line on stdout; progress goes to stderr. A :class:`UserError` (or a bad flag)
becomes one line on stderr and exit code 2; its message names Python arguments (``resolution='big'``), which
:func:`to_flags` rewrites into the verb's flags (``--resolution='big'``).
"""

import importlib
import importlib.util
import json
import re
import sys

from absl import flags

from zippy_tf.errors import UserError

PROG = "zippy-tf"
# verb → module, or verb → {sub-verb → module} for verbs whose flags depend on the method.
VERBS = {
    "export": "zippy_tf.cli.export",
    "bench": "zippy_tf.cli.bench",
    "info": "zippy_tf.cli.info",
    "train": {
        "zippypoint": "zippy_tf.cli.train_keypoints",
        "zippypoint-int8": "zippy_tf.cli.train_keypoints",
        "kp2d": "zippy_tf.cli.train_keypoints",
        "ettrack": "zippy_tf.cli.train_tracking",
        "ettrack-s": "zippy_tf.cli.train_tracking",
        "lighttrack": "zippy_tf.cli.train_tracking",
        "attention": "zippy_tf.cli.train_tracking",
        "rcm": "zippy_tf.cli.train_rcm",
        "compl": "zippy_tf.cli.train_compl",
    },
    "tune": {
        "ettrack": "zippy_tf.cli.tune_tracking",
        "ettrack-s": "zippy_tf.cli.tune_tracking",
        "lighttrack": "zippy_tf.cli.tune_tracking",
        "attention": "zippy_tf.cli.tune_tracking",
    },
    "eval": {"hpatches": "zippy_tf.cli.eval_hpatches", "track": "zippy_tf.cli.eval_track",
             "multitask": "zippy_tf.cli.eval_multitask"},
    "match": "zippy_tf.cli.match",
    "search": "zippy_tf.cli.search",
}


def _available(table):
    """Entries whose module exists in this version (verbs land issue by issue)."""
    out = {}
    for name, target in table.items():
        if isinstance(target, dict):
            sub = _available(target)
            if sub:
                out[name] = sub
        elif importlib.util.find_spec(target) is not None:
            out[name] = target
    return out


def _usage(table, prefix):
    lines = [f"usage: {prefix} <{'|'.join(table)}> [--help] [flags]", ""]
    for name, target in table.items():
        if isinstance(target, dict):
            lines.append(f"  {name:<10} {' | '.join(target)}  (see `{prefix} {name} <which> --help`)")
        else:
            lines.append(f"  {name:<10} {importlib.import_module(target).HELP}")
    return "\n".join(lines)


def to_flags(message, fv, renames=None):
    """Rewrites each ``argument=`` of a library message into the verb's ``--flag=``: the flag of the same name, or
    ``renames[argument]``; arguments without a flag stay as they are."""
    renames = renames or {}

    def flag(match):
        name = renames.get(match.group(1), match.group(1))
        return f"--{name}=" if name in fv else match.group(0)

    return re.sub(r"(?<![\w.-])([a-z_][a-z0-9_]*)=(?!=)", flag, message)


def _fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    table, prefix = _available(VERBS), PROG
    while True:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(_usage(table, prefix))
            return 0 if argv else 2
        name = argv.pop(0)
        if name not in table:
            return _fail(f"unknown command {name!r}; choose one of: {', '.join(table)} (see `{prefix} --help`)")
        prefix = f"{prefix} {name}"
        if not isinstance(table[name], dict):
            break
        table = table[name]
    module = importlib.import_module(table[name])
    fv = flags.FlagValues()
    module.define_flags(fv)
    if "--help" in argv or "-h" in argv:
        print(f"usage: {prefix} [flags]\n\n{module.HELP}\n\n{fv.get_help()}")
        return 0
    try:
        args = fv([prefix] + argv)[1:]
    except flags.Error as e:
        return _fail(f"{e} (see `{prefix} --help`)")
    try:
        result = module.main(fv, args, name)
    except UserError as e:
        return _fail(to_flags(str(e), fv, getattr(module, "ARGUMENT_FLAGS", None)))
    except OSError as e:  # a path the verb did not check itself: still one line, naming the file
        if e.filename is None:
            raise
        return _fail(f"{e.filename!r}: {e.strerror}; check the path and its permissions")
    except KeyboardInterrupt:
        return _fail("interrupted")
    print(json.dumps(result, sort_keys=True))
    return 0


def run():
    sys.exit(main())


__all__ = ["PROG", "VERBS", "main", "run", "to_flags"]

if __name__ == "__main__":
    run()
