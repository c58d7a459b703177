"""``python -m fgclip_utils``: the study's command line (:mod:`fgclip_utils.cli`)."""
from .cli import main

raise SystemExit(main())
