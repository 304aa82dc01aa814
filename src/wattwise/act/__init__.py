"""wattwise.act layer."""
