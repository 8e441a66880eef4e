import sys

from resguardo.cli import main

sys.exit(main())
