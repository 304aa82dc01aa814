"""wattwise.sim layer."""
