"""Pure rules: no I/O, imports only proto."""
