"""Kubernetes quantity strings ("512Mi", "8Gi", "1.5G", "0.5") <-> bytes / cores."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}  # fmt: skip
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?\s*$")


def parse_memory(value: str | int | float) -> int:
    """Bytes from a quantity; raises ValueError with a message that names the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("memory must be a quantity such as '512Mi' or '8Gi'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("memory must not be negative")
        return int(value)
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"invalid memory quantity {value!r}: use a number with Ki, Mi, Gi, Ti, k, M, G or T")
    number, suffix = match.groups()
    result = int(float(number) * _SUFFIX[suffix or ""])
    if result > 2**62:
        raise ValueError("memory quantity too large")
    return result


def format_memory(value: int) -> str:
    for suffix in ("Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIX[suffix]
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
