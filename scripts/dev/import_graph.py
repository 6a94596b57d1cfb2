"""The import graph by layer: ``python scripts/dev/import_graph.py [--list] [--json]`` (see plateveil_ops.import_graph)."""

import sys

from plateveil_ops.import_graph import main

if __name__ == "__main__":
    sys.exit(main())
