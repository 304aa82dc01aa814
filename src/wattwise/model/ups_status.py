"""The bits of the ``ups_status_flags`` metric: NUT ``ups.status`` words as one bitmask.

This is the one definition: the NUT driver encodes what upsd reports with it, the twin encodes
its UPS state with it, and the twin's NUT emulator decodes it back into words. The bit order
is wattwise's own (NUT itself only has the words, docs/new-drivers.txt).

>>> status_flags("OB DISCHRG LB") == UpsStatus.OB | UpsStatus.DISCHRG | UpsStatus.LB
True
>>> status_words(status_flags("OB DISCHRG LB"))
'OB LB DISCHRG'
"""

from __future__ import annotations

from enum import IntFlag


class UpsStatus(IntFlag):
    """``ups.status`` words (NUT docs/new-drivers.txt) as the bits of ``ups_status_flags``."""

    OL = 1
    OB = 2
    LB = 4
    HB = 8
    RB = 16
    CHRG = 32
    DISCHRG = 64
    BYPASS = 128
    CAL = 256
    OFF = 512
    OVER = 1024
    TRIM = 2048
    BOOST = 4096
    FSD = 8192
    ALARM = 16384
    NOCOMM = 32768


_BITS: dict[str, int] = {flag.name or "": flag.value for flag in UpsStatus}


def status_flags(words: str) -> UpsStatus:
    """Encode a ``ups.status`` word list (``"OL CHRG"``) as flags; case-insensitive.

    Raises:
        ValueError: A word is not a NUT status word (use the NUT driver's ``parse_status``
            to keep going past vendor words instead).
    """
    mask = 0  # plain ints: IntFlag arithmetic costs microseconds per operation
    for word in words.split():
        bit = _BITS.get(word.upper())
        if bit is None:
            raise ValueError(f"{word!r} is not a NUT ups.status word")
        mask |= bit
    return UpsStatus(mask)


def status_words(flags: int) -> str:
    """Decode flags into ``ups.status`` words, in bit order (``"OB LB DISCHRG"``); empty for 0.

    >>> status_words(0), status_words(int(UpsStatus.OL | UpsStatus.CHRG))
    ('', 'OL CHRG')
    """
    return " ".join(f.name or "" for f in UpsStatus if int(flags) & f.value)


def on_battery(mask: int) -> bool:
    """Whether a UPS with these ``ups.status`` flags runs without input power.

    ``OB``, or ``OFF`` without ``OL``: a UPS that ran its battery flat reports ``OFF`` (no
    longer ``OB``) while its input is still dead, and that is not "power back": the controller
    keeps the power event (no restores, no outlets on) until ``OL`` returns. The NUT driver
    reads ``on_battery`` with it and the twin reports it with it.

    >>> on_battery(UpsStatus.OB | UpsStatus.DISCHRG), on_battery(UpsStatus.OFF), on_battery(UpsStatus.OL)
    (True, True, False)
    >>> on_battery(UpsStatus.OFF | UpsStatus.OL)  # switched off by hand with mains present
    False
    """
    flags = UpsStatus(mask)
    return bool(flags & UpsStatus.OB) or (bool(flags & UpsStatus.OFF) and not flags & UpsStatus.OL)
