"""Deployment IDs: ``slug(name)-<5 random [a-z0-9]>`` unless the user picks one (DNS-1123 label)."""

from __future__ import annotations

import re
import secrets
import string

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"
NAME_PATTERN = r"^[a-zA-Z0-9]([a-zA-Z0-9 _-]{0,253}[a-zA-Z0-9])?$"
_ID = re.compile(ID_PATTERN)
_NON_WORD = re.compile(r"[^a-z0-9]")
_ALPHABET = string.ascii_lowercase + string.digits
_SUFFIX_LEN = 5
_MAX_ID = 63


def id_problem(deployment_id: str) -> str | None:
    """None when ``deployment_id`` is well formed; otherwise why not."""
    if _ID.fullmatch(deployment_id):
        return None
    return (
        "an ID has 3 to 63 characters: lowercase letters, digits and '-', "
        "starting and ending with a letter or digit"
    )


def slug(name: str) -> str:
    """PrimeHub's rule: every non-alphanumeric character becomes '-', lowercased, cut to fit a suffix."""
    base = _NON_WORD.sub("-", name.lower())[: _MAX_ID - _SUFFIX_LEN - 1].strip("-")
    return base or "deployment"


def generate_id(name: str) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(_SUFFIX_LEN))
    return f"{slug(name)}-{suffix}"
