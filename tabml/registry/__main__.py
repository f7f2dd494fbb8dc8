"""`python -m tabml.registry list|show|promote|rollback|reproduce`."""

from tabml.registry.cli import main

raise SystemExit(main())
