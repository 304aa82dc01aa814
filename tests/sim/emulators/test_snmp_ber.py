"""The emulated agent's BER codec against pysnmp's own (pyasn1) encoder and decoder."""

from __future__ import annotations

from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto import api

from wattwise.sim.emulators import snmp_ber as ber

LONG_OID = (1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 200000)


def _message(version: int, pdu_type: str, varbinds: list[tuple[tuple[int, ...], Any]], **fields: int) -> bytes:
    pmod = api.PROTOCOL_MODULES[version]
    pdu = getattr(pmod, pdu_type)()
    pmod.apiPDU.set_defaults(pdu)
    pmod.apiPDU.set_request_id(pdu, fields.get("request_id", 4242))
    if "non_repeaters" in fields:
        pmod.apiBulkPDU.set_non_repeaters(pdu, fields["non_repeaters"])
        pmod.apiBulkPDU.set_max_repetitions(pdu, fields["max_repetitions"])
    pmod.apiPDU.set_varbinds(pdu, varbinds)
    msg = pmod.Message()
    pmod.apiMessage.set_defaults(msg)
    pmod.apiMessage.set_community(msg, "twin")
    pmod.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def test_decodes_pysnmp_requests() -> None:
    v2 = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    get = ber.decode_request(_message(1, "GetRequestPDU", [(LONG_OID, v2.Null(""))], request_id=-7))
    assert (get.version, get.community, get.pdu, get.request_id) == (1, b"twin", ber.GET, -7)
    assert get.varbinds == [(LONG_OID, (ber.NULL, b""))]
    bulk = ber.decode_request(
        _message(1, "GetBulkRequestPDU", [((1, 3, 6, 1), v2.Null(""))], non_repeaters=1, max_repetitions=30)
    )
    assert (bulk.pdu, bulk.field2, bulk.field3) == (ber.GET_BULK, 1, 30)
    v1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
    put = ber.decode_request(_message(0, "SetRequestPDU", [(LONG_OID, v1.Integer(-300))]))
    assert (put.version, put.pdu) == (0, ber.SET)
    assert ber.value_int(put.varbinds[0][1]) == -300


def test_rejects_garbage_and_v3() -> None:
    for junk in (b"", b"\x30\x03\x02\x01", b"\x04\x00", b"\x30\x05\x02\x01\x03\x04\x00"):
        with pytest.raises(ber.BerError):
            ber.decode_request(junk)


def test_pysnmp_decodes_our_answers() -> None:
    request = ber.decode_request(_message(1, "GetRequestPDU", [(LONG_OID, None), ((1, 3, 6, 1), None)]))
    text = "x" * 300  # long-form lengths
    binds = [
        (ber.oid(LONG_OID), ber.integer(-129)),
        (ber.oid((1, 3, 6, 1, 2)), ber.unsigned(0xFFFFFFFF)),
        (ber.oid((1, 3, 6, 1, 3)), ber.unsigned(128)),
        (ber.oid((1, 3, 6, 1, 4)), ber.octets(text)),
        (ber.oid((1, 3, 6, 1, 5)), ber.NO_SUCH_INSTANCE),
        (ber.oid((2, 999, 1)), ber.END_OF_MIB_VIEW),
    ]
    pmod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    msg, rest = decoder.decode(ber.encode_response(request, 0, 0, binds), asn1Spec=pmod.Message())
    assert not rest
    assert str(pmod.apiMessage.get_community(msg)) == "twin"
    pdu = pmod.apiMessage.get_pdu(msg)
    assert int(pmod.apiPDU.get_request_id(pdu)) == request.request_id
    got = [(tuple(o), v) for o, v in pmod.apiPDU.get_varbinds(pdu)]
    assert [o for o, _ in got] == [
        LONG_OID,
        (1, 3, 6, 1, 2),
        (1, 3, 6, 1, 3),
        (1, 3, 6, 1, 4),
        (1, 3, 6, 1, 5),
        (2, 999, 1),
    ]
    assert int(got[0][1]) == -129
    assert int(got[1][1]) == 0xFFFFFFFF
    assert int(got[2][1]) == 128
    assert bytes(got[3][1]) == text.encode()
    assert [type(v).__name__ for _, v in got[4:]] == ["NoSuchInstance", "EndOfMibView"]
