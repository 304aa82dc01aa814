"""wattwise.drivers layer."""
