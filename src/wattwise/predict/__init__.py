"""wattwise.predict layer."""
