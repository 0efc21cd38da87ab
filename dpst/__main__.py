import sys

from dpst.cli import main

sys.exit(main())
