"""`python -m tabml.serve [--port N] [--registry-dir DIR] [--name LINE]`."""

from tabml.serve.server import main

raise SystemExit(main())
