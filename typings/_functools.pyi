# The C half of functools, which typeshed does not describe. pyinit takes partial
# from here on the start-up path because ``import functools`` imports collections.
from functools import partial as partial
