"""wattwise.control layer."""
