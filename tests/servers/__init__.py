"""Real servers that tests start on loopback, for protocol edges no mock can vouch for."""
