import sys

from jaxdyna.cli import main

sys.exit(main())
