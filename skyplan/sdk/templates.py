"""skyplan's limited jinja2 sandbox, for providers that render user-written templates (hook argv).

A separate module from `skyplan.sdk` because it imports jinja2: only a provider that renders a
template pays for it.
"""

from skyplan.sandbox import LimitExceeded, Limits, TemplateFailure
from skyplan.sandbox.environment import LimitedEnvironment, compile_template, render

__all__ = ["LimitExceeded", "LimitedEnvironment", "Limits", "TemplateFailure", "compile_template", "render"]
