"""`python -m vitpose_plus ...` is the `vitpose-plus` command; `accelerate launch -m vitpose_plus train ...` runs it on
several processes."""

import sys

from .cli import main

sys.exit(main())
