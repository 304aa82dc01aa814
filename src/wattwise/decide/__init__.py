"""wattwise.decide layer."""
