"""Protocol endpoints backed by any Driver (usually the twin): NUT, Redfish, SNMP, Modbus.

Each emulator serves a real protocol on loopback and, behind it, calls ``driver.read()`` for
state and ``driver.apply(action)`` for commands, so the controller can be tested over the wire.
"""
