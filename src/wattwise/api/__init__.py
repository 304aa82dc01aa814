"""wattwise.api layer."""
