"""wattwise.model layer."""
