"""`python -m tabml.predict INPUT OUTPUT [--version N | --stage S]`."""

from tabml.predict.batch import main

raise SystemExit(main())
