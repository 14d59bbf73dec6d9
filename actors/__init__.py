"""The actor runtime and the actors that own live state."""
