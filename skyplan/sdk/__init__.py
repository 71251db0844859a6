"""The provider SDK: everything a provider plugin imports, and the only thing it imports.

    from skyplan.sdk import Provider, ReadRequest, ReadResponse, ResourceResult, ...

Requests and responses (each response carries diagnostics), typed resources, the entry-point
registry, and the helpers providers share with the core: atomic file writes and reads that never
follow a symlink (`atomic`), network parsing, redaction of secrets. Template rendering in the
sandbox lives in `skyplan.sdk.templates`, apart, because it imports jinja2.
"""

from skyplan import atomic, repository
from skyplan.config.diagnostics import Diagnostic, Severity, errors_in
from skyplan.config.gateway import GATEWAY_RULE, GatewayAddress, parse_gateway
from skyplan.config.network import ZONE_REASON, parse_endpoint, parse_network
from skyplan.errors import ProviderError, SkyplanError, UnsafePathError
from skyplan.redact import mask, redact, redact_argv, remember
from skyplan.sandbox import Limits, TemplateFailure
from skyplan.sdk.provider import (
    READ_BACK,
    ApplyRequest,
    Change,
    Display,
    ImportRequest,
    ImportResponse,
    ImportHost,
    ImportSource,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadBack,
    Reading,
    ReadMemo,
    ReadRequest,
    ReadResponse,
    ResourceResult,
    ResourceStatusReport,
    StatusRequest,
    StatusResponse,
    ValidateRequest,
    ValidateResponse,
    WorkspacePaths,
)
from skyplan.sdk.registry import (
    DEFAULT_PROVIDER,
    ENTRY_POINT_GROUP,
    installed_providers,
    provider_class,
    provider_class_from_ref,
    provider_ref,
)
from skyplan.sdk.resources import (
    NAME_PATTERN,
    NAME_RULE,
    RESOURCE_TYPES,
    Address,
    LinkEnds,
    ResourceType,
    ResourceView,
    address_problem,
    link_ends,
)

__all__ = [
    "DEFAULT_PROVIDER",
    "ENTRY_POINT_GROUP",
    "GATEWAY_RULE",
    "READ_BACK",
    "RESOURCE_TYPES",
    "ZONE_REASON",
    "Address",
    "ApplyRequest",
    "Change",
    "Diagnostic",
    "Display",
    "ImportRequest",
    "ImportResponse",
    "ImportHost",
    "ImportSource",
    "GatewayAddress",
    "NAME_PATTERN",
    "NAME_RULE",
    "LinkEnds",
    "Limits",
    "PlanRequest",
    "PlanResponse",
    "Provider",
    "ProviderError",
    "ReadBack",
    "ReadMemo",
    "ReadRequest",
    "ReadResponse",
    "Reading",
    "ResourceResult",
    "ResourceStatusReport",
    "ResourceType",
    "ResourceView",
    "Severity",
    "SkyplanError",
    "StatusRequest",
    "StatusResponse",
    "TemplateFailure",
    "UnsafePathError",
    "ValidateRequest",
    "ValidateResponse",
    "WorkspacePaths",
    "address_problem",
    "atomic",
    "errors_in",
    "installed_providers",
    "link_ends",
    "mask",
    "parse_endpoint",
    "parse_gateway",
    "parse_network",
    "provider_class",
    "provider_class_from_ref",
    "provider_ref",
    "redact",
    "redact_argv",
    "remember",
]
