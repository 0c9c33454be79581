"""``python -m stack``: start the production topology, run until Ctrl-C or SIGTERM, stop all of it."""

import sys

from stack.topology import main

sys.exit(main())
