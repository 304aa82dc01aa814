"""Unit conversions used at the edges (drivers, UI); everything inside wattwise is SI.

>>> kw_to_w(1.5)
1500.0
>>> pct_to_frac(42.0)
0.42
"""

from __future__ import annotations

SECONDS_PER_HOUR = 3600.0
JOULES_PER_WH = 3600.0


def kw_to_w(kw: float) -> float:
    """Kilowatts to watts."""
    return kw * 1000.0


def w_to_kw(w: float) -> float:
    """Watts to kilowatts."""
    return w / 1000.0


def pct_to_frac(pct: float) -> float:
    """Percent (0-100) to a fraction (0-1)."""
    return pct / 100.0


def frac_to_pct(frac: float) -> float:
    """Fraction (0-1) to percent (0-100)."""
    return frac * 100.0


def wh_to_j(wh: float) -> float:
    """Watt-hours to joules."""
    return wh * JOULES_PER_WH


def j_to_wh(j: float) -> float:
    """Joules to watt-hours."""
    return j / JOULES_PER_WH


def centi_c_to_c(centi_c: float) -> float:
    """Centi-degrees Celsius (as some PDUs report) to degrees Celsius."""
    return centi_c / 100.0


def deci_to_unit(deci: float) -> float:
    """Tenths of a unit (APC PowerNet deci-amps, deci-volts) to the unit."""
    return deci / 10.0


def amps_to_w(current_a: float, voltage_v: float, power_factor_frac: float = 1.0) -> float:
    """Real power of a single-phase load from current, voltage and power factor."""
    return current_a * voltage_v * power_factor_frac
