"""From bytes that arrive to a committed change of a ticket."""
