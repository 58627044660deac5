"""Kubernetes resource quantities (``500m``, ``2``, ``1.5Gi``, ``512M``) in the units of a job
spec: millicores, MiB and GPU devices. Pure.

The grammar is the apimachinery one: a signed decimal number, optionally with an exponent
(``1e3``), followed by a binary (``Ki``..``Ei``) or decimal (``n``, ``u``, ``m``, ``k``,
``M``..``E``) suffix. Anything else is refused with the reason, so a manifest saying
``cpu: 2x`` gets an error naming the field rather than a guess.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))"
                       r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
           "Ei": 1 << 60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: object) -> Decimal:
    """The quantity's value in base units (cores, bytes, devices)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression "
                            f"'{_QUANTITY.pattern}', not a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError("a quantity must be finite")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise QuantityError("a quantity is a string or a number")
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {value!r})")
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
        if exponent:
            return amount * (Decimal(10) ** int(exponent[1:]))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise QuantityError(str(exc)) from None
    if suffix in _BINARY:
        return amount * _BINARY[suffix]
    return amount * _DECIMAL[suffix or ""]


def cpu_millicores(value: object) -> int:
    """``500m`` → 500, ``2`` → 2000; rounded up like the kubelet does for a request."""
    cores = parse_quantity(value)
    if cores <= 0:
        raise QuantityError("a cpu request must be positive")
    return int(math.ceil(cores * 1000))


def memory_mib(value: object) -> int:
    """``256Mi`` → 256, ``1G`` → 954; rounded up to whole MiB."""
    amount = parse_quantity(value)
    if amount <= 0:
        raise QuantityError("a memory request must be positive")
    return int(math.ceil(amount / (1 << 20)))


def devices(value: object) -> int:
    """Whole devices (``nvidia.com/gpu: 2``); extended resources cannot be fractional."""
    amount = parse_quantity(value)
    if amount < 0 or amount != amount.to_integral_value():
        raise QuantityError("must be a whole, non-negative number of devices")
    return int(amount)


def format_cpu(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"
