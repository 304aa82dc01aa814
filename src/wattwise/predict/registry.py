"""Model versions: an in-memory :class:`ModelRegistry` and (de)serialisation of fitted models.

The file-backed registry lives with the CLI (``wattwise.cli.train``) and the store-backed one
(the store's model table) in ``wattwise.control.model_registry``, because this layer does no
I/O; both have the same two verbs.

Blobs are pickles of fitted wattwise models: load only blobs this installation wrote
(pickle runs code on load).

>>> reg = InMemoryModelRegistry()
>>> reg.save("demand/pdu6", 1, b"x", {"train_end_s": "10"})
>>> reg.latest("demand/pdu6").version
1
"""

from __future__ import annotations

import pickle

from wattwise.errors import PredictionError
from wattwise.predict.base import ModelRecord


def dump_model(model: object) -> bytes:
    """Serialise a fitted model."""
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(blob: bytes) -> object:
    """Deserialise a model written by :func:`dump_model` (trusted blobs only).

    Raises:
        PredictionError: The blob is not a readable model.
    """
    try:
        return pickle.loads(blob)  # noqa: S301 - our own registry's blobs only
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as err:
        raise PredictionError(f"unreadable model blob: {err}") from err


class InMemoryModelRegistry:
    """A :class:`~wattwise.predict.base.ModelRegistry` held in memory (tests, one-shot runs)."""

    def __init__(self) -> None:
        self._records: dict[str, dict[int, ModelRecord]] = {}

    def save(self, name: str, version: int, blob: bytes, meta: dict[str, str]) -> None:
        """Store a version; an existing version is never overwritten.

        Raises:
            PredictionError: The version exists already or is not positive.
        """
        versions = self._records.setdefault(name, {})
        if version < 1 or version in versions:
            raise PredictionError(f"{name} version {version} exists or is invalid")
        versions[version] = ModelRecord(name, version, blob, tuple(sorted(meta.items())))

    def latest(self, name: str) -> ModelRecord | None:
        """The highest version of ``name``, or ``None``."""
        versions = self._records.get(name)
        return versions[max(versions)] if versions else None
