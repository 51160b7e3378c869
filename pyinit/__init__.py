"""pyinit: a container init (PID 1) and sandbox launcher.

This file is imported before the entry point blocks signals, so it must stay
free of imports: every millisecond here is a window in which a signal can kill
pyinit before it can forward it.
"""

__version__ = "0.1.0"
