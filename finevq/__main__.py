"""`python -m finevq` (and `accelerate launch -m finevq`): the same entry point as the `finevq` command."""

from finevq.cli import main

raise SystemExit(main())
