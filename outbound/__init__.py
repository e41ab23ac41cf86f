"""From a committed change to bytes that leave."""
