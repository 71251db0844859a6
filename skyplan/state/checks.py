"""Values read back from a state, held to the configuration's own rules before anything uses them.

A state is written by whoever can reach its store (a shared PostgreSQL table, a state.json in a
repository), and its names and values become paths, lines of generated files and arguments of
hooks. So each resource passes the rules its entry in links.yaml would (names, endpoints,
networks), and the provider's own validators (settings, computed values) with a ReadBack
context, under which a path stays inside the workspace unless the configuration names it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from skyplan.errors import StateError
from skyplan.sdk import ReadBack
from skyplan.state.model import ResourceState, State

def check_state(state: State, provider_cls: type, where: str, read_back: ReadBack) -> None:
    """Raise StateError naming the state and the first resource that fails a rule."""
    problems = recorded_problems(state.resources, provider_cls, read_back)
    if not problems:
        return
    address, reason = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise StateError(
        f"state {where} holds {address}, which the configuration's rules refuse: {reason}{more}. "
        f"Nothing was done. If that entry is not yours, remove it: skyplan state rm {_shell_word(address)}"
    )


def _shell_word(text: str) -> str:
    """`text` as one word to paste into a shell; bash's $'…' when it holds control characters
    (a name from a hostile state), so that the word pasted is the name itself."""
    if text.isprintable():
        return shlex.quote(text)
    inner = "".join(
        ("\\\\" if c == "\\" else "\\'" if c == "'" else c) if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )
    return f"$'{inner}'"


def recorded_problems(resources: Iterable[ResourceState], provider_cls: type, read_back: ReadBack) -> list[tuple[str, str]]:
    """(address, reason) for every rule a recorded resource fails."""
    from skyplan.config.diagnostics import format_path
    from skyplan.config.models import ClusterSpec
    from skyplan.config.rules import check_entries

    problems: list[tuple[str, str]] = []
    clusters: list[ResourceState] = []
    links: list[ResourceState] = []
    for r in resources:  # one pass: a state of 100,000 links is read by every command
        (clusters if r.type == "cluster" else links).append(r)
    specs: list[ClusterSpec] = []
    spec_addresses: list[str] = []
    settings = _SettingsCheck(provider_cls.settings_model, provider_cls.cluster_settings, read_back)
    for resource in clusters:
        attributes = resource.attributes
        try:
            # No endpoint recorded: a cluster behind NAT, as links.yaml allows.
            entry = {"name": resource.name, "endpoint": attributes.get("endpoint"), "subnets": attributes.get("subnets")}
            if "gateway" in attributes:
                # A host skyplan will ssh to: held to the file's rules like the rest.
                entry["gateway"] = attributes["gateway"]
            spec = ClusterSpec.model_validate(entry)
        except ValidationError as exc:
            problems.append((resource.address, _first_error(exc)))
        else:
            specs.append(spec)
            spec_addresses.append(resource.address)
        reason = settings.problem(attributes)
        if reason:
            problems.append((resource.address, reason))
    context = read_back.as_context()
    # The provider's own arguments (an external peer's key, a pinned address, a link's preshared
    # key or transit hub): they reach peers' configs, so they pass the provider's own model.
    for kind, model in provider_cls.argument_models.items():
        fields = frozenset(model.model_fields)
        for resource in clusters if kind == "cluster" else links:
            if fields.isdisjoint(resource.attributes):
                continue  # none of the provider's own arguments: nothing to check (most links)
            try:
                model.model_validate(resource.attributes, context=context)
            except ValidationError as exc:
                problems.append((resource.address, _first_error(exc)))
    for kind, model in provider_cls.computed_models.items():
        for resource in clusters if kind == "cluster" else links:
            try:
                model.model_validate(resource.computed, context=context)
            except ValidationError as exc:
                problems.append((resource.address, "computed " + _first_error(exc)))
    # check_shapes made sure that every link's source and target are strings.
    ends: set[str] = set()
    update = ends.update
    for r in links:
        update(r.ends)
    for diagnostic in check_entries(specs, [r.name for r in links], ends):
        if diagnostic.severity != "error":
            continue
        section, place = diagnostic.path[0], diagnostic.path[1]
        if section == "clusters":
            address = spec_addresses[place]  # type: ignore[index]
        elif isinstance(place, int):
            address = links[place].address
        else:  # an end, by name: the first link that names it
            address = next(r.address for r in links if place in r.ends)
        # Told from the entry, which the address names: "endpoint: …", not "clusters[3].endpoint: …".
        within = format_path(diagnostic.path[2:]) if isinstance(place, int) else ""
        problems.append((address, f"{within}: {diagnostic.detail}" if within else diagnostic.detail))
    return problems


class _SettingsCheck:
    """The provider's settings that each cluster records, through the provider's own model.

    Most clusters record the same settings: each distinct set is validated once.
    """

    def __init__(self, model: type[BaseModel], names: tuple[str, ...], read_back: ReadBack):
        self.model = model
        self.names = names
        self.context = read_back.as_context()
        # The configuration's settings fill in the rest, so that a model with required
        # settings that clusters do not record still validates what they do record.
        self.base = read_back.configured.model_dump() if read_back.configured is not None else {}
        self.seen: dict[tuple, str | None] = {}

    def problem(self, attributes: dict) -> str | None:
        values = {name: attributes[name] for name in self.names if name in attributes}
        try:
            key: tuple | None = tuple(values.items())
            hash(key)
        except TypeError:
            key = None  # a list where a setting should be: validated (and refused) every time
        if key is not None and key in self.seen:
            return self.seen[key]
        try:
            self.model.model_validate({**self.base, **values}, context=self.context)
            reason = None
        except ValidationError as exc:
            reason = _first_error(exc)
        if key is not None:
            self.seen[key] = reason
        return reason


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    place = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "value_error" and isinstance(value, str | int | float | bool) and len(repr(value)) <= 80:
        message += f", got {value!r}"
    return f"{place}: {message}" if place else message
