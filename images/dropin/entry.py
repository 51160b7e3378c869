# PyInstaller's entry point for the drop-in binary. pyinit.__main__ blocks
# every signal on its first line, as in the pip-installed command.
import sys

from pyinit.__main__ import main

sys.exit(main())
