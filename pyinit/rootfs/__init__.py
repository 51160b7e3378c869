"""Root filesystem setup: the plan and the code that carries it out."""
