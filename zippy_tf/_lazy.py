"""Public names of a package that import their module on first access (PEP 562), so importing one light module of
a package (``zippy_tf.tracking.hyperparameters``, for the command line's ``--help``) does not load TensorFlow."""

import importlib


def lazy_exports(package, modules):
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, given {module: [public names it defines]}."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(importlib.import_module(package), name, value)  # later accesses skip this function
        return value

    def __dir__():
        return sorted({*vars(importlib.import_module(package)), *exports})

    return __getattr__, __dir__, sorted(exports)


__all__ = ["lazy_exports"]
