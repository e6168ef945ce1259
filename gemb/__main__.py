import sys

from gemb.cli import main

sys.exit(main())
