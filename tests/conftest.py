"""Test-wide settings: hypothesis without per-example deadlines.

CI shares a 2-core machine; a deadline would fail a property for a slow
moment of the machine rather than for a slow parser (speed lives in bench/).
"""

from hypothesis import settings

settings.register_profile("vigil", deadline=None)
settings.load_profile("vigil")
