"""`MacroBlock`: the unit of the layer partitioning and traversal search (thesis §5.3.2), as plain data.

A network is a ``list[MacroBlock]``; the search edits the ``precision`` (or ``pooling``) of one block at a time
and rebuilds. Blocks round-trip through dicts and JSON, so a searched configuration is a small file.
"""

import dataclasses
import json

from zippy_tf.errors import UserError

PRECISIONS = ("float", "int8", "bin", "bin_r")
POOLINGS = ("max", "avg", "subsample", "learned")
ROLES = ("first_conv", "encoder", "pool", "decoder", "head")

# The candidate set of each macro-block kind (thesis §5.4.2, Fig. 5.2). For pooling blocks the candidates are
# pooling methods; "early learned" pooling is a learned pool that also performs the next stage's channel
# increase (its `filters` equal the next stage's), so every binary conv after it keeps an identity shortcut.
ROLE_CANDIDATES = {
    "first_conv": ("float", "int8"),
    "encoder": ("int8", "bin", "bin_r"),
    "pool": POOLINGS,
    "decoder": ("int8", "bin_r"),
    "head": ("float", "int8"),
}


@dataclasses.dataclass(frozen=True)
class MacroBlock:
    """One macro-block: a run of convolutions (or a pooling step) sharing one precision.

    Args:
        name: unique name; the Keras layers of the block are prefixed with it.
        role: first_conv, encoder, pool, decoder or head (decides the candidate set of the search).
        precision: float, int8, bin (binary conv, no shortcut) or bin_r (binary conv + Int8 residual).
        filters: output channels.
        num_convs: convolutions in the block (pooling blocks: 1 for learned pooling, else 0 is fine).
        kernel_size: spatial kernel size of the convolutions.
        pooling: for role "pool": max, avg, subsample or learned (space-to-depth 2 + 1×1 conv).
        activation: activation after each conv (binary blocks: after the last residual add).
        qmax: fake-quant range ±qmax of int8 tensors in this block.
    """

    name: str
    role: str
    precision: str = "int8"
    filters: int = 0
    num_convs: int = 1
    kernel_size: int = 3
    pooling: str = ""
    activation: str = "hard_swish"
    qmax: float = 6.0

    def __post_init__(self):
        if self.role not in ROLES:
            raise UserError(f"macro-block {self.name!r}: unknown role {self.role!r}; use one of {', '.join(ROLES)}")
        if self.precision not in PRECISIONS:
            raise UserError(
                f"macro-block {self.name!r}: unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        if self.role == "pool" and self.pooling not in POOLINGS:
            raise UserError(
                f"macro-block {self.name!r}: unknown pooling {self.pooling!r}; use one of {', '.join(POOLINGS)}"
            )
        if self.role != "pool" and self.filters <= 0:
            raise UserError(f"macro-block {self.name!r}: filters must be positive, got {self.filters}")

    @property
    def choice(self):
        """The value the search varies for this block: the pooling method for pools, else the precision."""
        return self.pooling if self.role == "pool" else self.precision

    def with_choice(self, value):
        """A copy with the searched value replaced."""
        field = "pooling" if self.role == "pool" else "precision"
        return dataclasses.replace(self, **{field: value})

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"macro-block has unknown keys {sorted(unknown)}; allowed keys: {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise UserError(f"macro-block {d.get('name', '?')!r} is incomplete ({e}); give at least name and role")


def blocks_to_json(blocks):
    return json.dumps([b.to_dict() for b in blocks], indent=2)


def blocks_from_json(text):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"macro-block config is not valid JSON ({e.msg} at line {e.lineno})")
    if isinstance(data, dict) and "blocks" in data:
        data = data["blocks"]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise UserError("macro-block config must be a JSON list of objects (or {\"blocks\": [...]})")
    blocks = [MacroBlock.from_dict(d) for d in data]
    names = [b.name for b in blocks]
    if len(set(names)) != len(names):
        raise UserError(f"macro-block names must be unique, got {names}")
    return blocks


def config_key(blocks):
    """A stable identity of a configuration: the searched choice of every block, in order."""
    return "|".join(f"{b.name}={b.choice}" for b in blocks)


__all__ = ["MacroBlock", "POOLINGS", "PRECISIONS", "ROLES", "ROLE_CANDIDATES", "blocks_from_json", "blocks_to_json",
           "config_key"]
