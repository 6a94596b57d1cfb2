"""C extensions of plateveil, built by ``make setup`` (``python -m plateveil._native.build``); optional: the
code that uses them falls back to the pure-Python path, saying why, where they are not built."""
