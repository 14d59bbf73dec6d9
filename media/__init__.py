"""Pure media work (PyAV, numpy): paths in, files and progress out."""
