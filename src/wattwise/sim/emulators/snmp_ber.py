"""Just enough BER to serve SNMP v1/v2c from an emulated agent (RFC 3416 messages, X.690 BER).

The emulated PDUs answer hundreds of GETs per second from one process; pyasn1's generic codec
spent ~1.9 ms of CPU per 18-varbind request there (measured), this one a small fraction of it.
Values of the agent's MIB view are encoded once, as bytes (:func:`integer`, :func:`unsigned`,
:func:`octets`), so an answer is a concatenation. Only what an SNMP manager sends is decoded:
the message, its PDU and varbinds whose values stay raw ``(tag, content)`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

Oid = tuple[int, ...]

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_ID = 0x06
GAUGE32 = 0x42
GET, GET_NEXT, RESPONSE, SET, GET_BULK = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5
NO_SUCH_OBJECT = b"\x80\x00"
NO_SUCH_INSTANCE = b"\x81\x00"
END_OF_MIB_VIEW = b"\x82\x00"
NULL_VALUE = b"\x05\x00"


class BerError(ValueError):
    """The datagram is not a BER-encoded SNMP v1/v2c message this codec understands."""


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request.

    Attributes:
        version: 0 (v1) or 1 (v2c).
        community: The community string.
        pdu: PDU tag (``GET``, ``GET_NEXT``, ``GET_BULK``, ``SET``...).
        request_id: Echoed in the answer.
        field2: error-status, or non-repeaters of a GETBULK.
        field3: error-index, or max-repetitions of a GETBULK.
        varbinds: ``(oid, (tag, content))`` pairs.
    """

    version: int
    community: bytes
    pdu: int
    request_id: int
    field2: int
    field3: int
    varbinds: list[tuple[Oid, tuple[int, bytes]]]


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One tag-length-value."""
    return bytes((tag,)) + _length(len(content)) + content


def integer(value: int, tag: int = INTEGER) -> bytes:
    """A signed INTEGER (two's complement, shortest form)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def unsigned(value: int, tag: int = GAUGE32) -> bytes:
    """An unsigned application type (Gauge32 by default), clamped to 0..2^32-1."""
    value = min(max(0, value), 0xFFFFFFFF)
    return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octets(value: str | bytes) -> bytes:
    """An OCTET STRING."""
    return tlv(OCTET_STRING, value.encode() if isinstance(value, str) else value)


def oid(value: Oid) -> bytes:
    """An OBJECT IDENTIFIER."""
    if len(value) < 2:
        raise BerError(f"OID {value} has fewer than two arcs")
    out = bytearray()
    for arc in (value[0] * 40 + value[1], *value[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OBJECT_ID, bytes(out))


def _read(data: bytes, at: int) -> tuple[int, bytes, int]:
    """Tag, content and the offset after one TLV starting at ``at``."""
    if at + 2 > len(data):
        raise BerError("truncated TLV")
    tag, first = data[at], data[at + 1]
    at += 2
    if first & 0x80:
        size = first & 0x7F
        if size == 0 or size > 4 or at + size > len(data):
            raise BerError("unsupported length")
        length = int.from_bytes(data[at : at + size], "big")
        at += size
    else:
        length = first
    if at + length > len(data):
        raise BerError("truncated value")
    return tag, data[at : at + length], at + length


def _int(content: bytes) -> int:
    return int.from_bytes(content, "big", signed=True) if content else 0


def _oid_arcs(content: bytes) -> Oid:
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise BerError("empty OID")
    first = min(arcs[0] // 40, 2)
    return (first, arcs[0] - 40 * first, *arcs[1:])


def _expect(data: bytes, at: int, tag: int) -> tuple[bytes, int]:
    got, content, after = _read(data, at)
    if got != tag:
        raise BerError(f"expected tag {tag:#x}, got {got:#x}")
    return content, after


def decode_request(datagram: bytes) -> Request:
    """Decode an SNMP v1/v2c message.

    Raises:
        BerError: Not BER, not v1/v2c, or not shaped as an SNMP message.
    """
    message, _ = _expect(datagram, 0, SEQUENCE)
    version, at = _expect(message, 0, INTEGER)
    community, at = _expect(message, at, OCTET_STRING)
    pdu_tag, pdu, _ = _read(message, at)
    if _int(version) not in (0, 1):
        raise BerError(f"SNMP version {_int(version)} is not v1/v2c")
    fields = []
    at = 0
    for _ in range(3):
        content, at = _expect(pdu, at, INTEGER)
        fields.append(_int(content))
    binds, _ = _expect(pdu, at, SEQUENCE)
    varbinds: list[tuple[Oid, tuple[int, bytes]]] = []
    at = 0
    while at < len(binds):
        bind, at = _expect(binds, at, SEQUENCE)
        name, after = _expect(bind, 0, OBJECT_ID)
        tag, value, _ = _read(bind, after)
        varbinds.append((_oid_arcs(name), (tag, value)))
    return Request(_int(version), community, pdu_tag, fields[0], fields[1], fields[2], varbinds)


def value_int(value: tuple[int, bytes]) -> int | None:
    """The integer in a raw varbind value (INTEGER or an unsigned type), else ``None``."""
    tag, content = value
    if tag == INTEGER:
        return _int(content)
    if tag in (0x41, GAUGE32, 0x43, 0x46):
        return int.from_bytes(content, "big")
    return None


def encode_response(request: Request, status: int, index: int, varbinds: list[tuple[bytes, bytes]]) -> bytes:
    """A Response PDU to ``request``; varbinds as pre-encoded ``(oid, value)`` pairs."""
    binds = b"".join(tlv(SEQUENCE, name + value) for name, value in varbinds)
    pdu = integer(request.request_id) + integer(status) + integer(index) + tlv(SEQUENCE, binds)
    body = integer(request.version) + octets(request.community) + tlv(RESPONSE, pdu)
    return tlv(SEQUENCE, body)
