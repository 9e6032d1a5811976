"""Command line of the dataset service: ``python -m dataset_service <command>``."""
from .cli import main

raise SystemExit(main())
