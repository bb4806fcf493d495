"""The Prometheus text format (0.0.4), written line by line, fast.

The lines are those ``prometheus_client.generate_latest`` writes for the same counter,
gauge and histogram families (``tests/api/test_metrics_text.py`` compares them), at a
fraction of the cost: it builds a sample object per line and validates and escapes
every label name of every sample, which for the 24,000 samples of 1,000 databases
takes 0.3-0.4 s. Here label names are keyword arguments (valid by construction) and
a histogram's labels are written once for its 18 lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import cast

from prometheus_client.utils import floatToGoString

# How prometheus_client writes a value (as Go does: 1e+07, +Inf); untyped upstream.
_go_string = cast(Callable[[float], str], floatToGoString)


# Most values repeat (0.0, small counts): 24,000 conversions become a few hundred.
@lru_cache(maxsize=1 << 14)
def _value(value: float) -> str:
    return _go_string(value)


def labels(**values: str) -> str:
    """Return ``values`` as a label list: sorted by name, values escaped."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(values.items()))


class Exposition:
    """Families and their samples, in the order they are written."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, doc: str) -> None:
        """Start a family of ``kind`` counter (``name`` ends in ``_total``), gauge or
        histogram."""
        doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        self._lines.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")

    def sample(self, name: str, label_list: str, value: float) -> None:
        """Write one sample; ``label_list`` from ``labels()``, or empty."""
        if label_list:
            self._lines.append(f"{name}{{{label_list}}} {_value(value)}\n")
        else:
            self._lines.append(f"{name} {_value(value)}\n")

    def histogram(self, name: str, label_list: str, buckets: Iterable[tuple[str, float]],
                  total: float) -> None:
        """Write one label set of a histogram: its cumulative ``buckets`` (``le``, count;
        the last ``+Inf``), ``_count`` and ``_sum``. Every label name in ``label_list``
        must sort before ``le``, where prometheus_client puts it."""
        start = f"{name}_bucket{{{label_list}," if label_list else f"{name}_bucket{{"
        count = 0.0
        for le, count in buckets:
            self._lines.append(f'{start}le="{le}"}} {_value(count)}\n')
        self.sample(name + "_count", label_list, count)
        self.sample(name + "_sum", label_list, total)

    def extend(self, other: Exposition) -> None:
        self._lines += other._lines

    def text(self) -> str:
        return "".join(self._lines)


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
