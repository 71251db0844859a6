"""The provider interface, kept under its old name: everything lives in `skyplan.sdk` now."""

from skyplan.sdk import *  # noqa: F403
from skyplan.sdk import __all__  # noqa: F401
