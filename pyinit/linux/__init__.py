"""The one place that talks to the kernel beyond what ``os`` offers."""
