"""From a links.yaml path to a validated Config, with every problem located and reported at once."""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from skyplan import collector
from skyplan.config import source
from skyplan.config.diagnostics import Diagnostic, Path as DocPath, errors_in, format_path
from skyplan.config.models import (
    TOP_LEVEL_KEYS,
    BackendSpec,
    ClusterSpec,
    Config,
    LinkSpec,
    MeshSpec,
    MovedSpec,
    ProviderBlock,
)
from skyplan.errors import ConfigError, ProviderError
from skyplan.state.urls import has_password


@dataclass
class LoadedConfig:
    """A valid configuration and what was found on the way: data only, nothing to call.

    The provider it names is a class here; skyplan/workspace.py builds the instance.
    """

    path: Path
    display: str
    config: Config
    settings: BaseModel  # the provider's validated settings
    provider_class: type  # the provider that `provider.name` names (a skyplan.sdk.Provider)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings: errors raise ConfigError
    # sha256 of the text that was validated (after rendering, for a template): what a saved
    # plan records, to know that the configuration is still the one it was made from.
    digest: str = ""
    # Settings and backend only, without clusters and links: what skyctl reads from the cache.
    partial: bool = False
    # The cache entry this configuration may be stored under (config/cache.py), or None when it
    # must not be: it came from the cache, it has warnings, or it holds a database password.
    # Stored by `remember` once a command has used it successfully, so that input which fails
    # later (a damaged state, say) leaves nothing written.
    cache_key: str | None = None
    cache_dir: Path | None = None

    @property
    def root(self) -> Path:
        return self.path.parent


@dataclass
class _Origin:
    """Where an entry of `clusters`/`links` came from, when not from the main document."""

    document: int
    base: DocPath
    fields: dict[str, DocPath] = field(default_factory=dict)


class _Locator:
    def __init__(self, src: source.Source, main: int | None):
        self.src = src
        self.main = main
        self.origins: dict[tuple[str, int], _Origin] = {}

    def __call__(self, path: DocPath, at_key: bool) -> source.Position | None:
        document = self.main
        if len(path) >= 2 and (path[0], path[1]) in self.origins:
            origin = self.origins[(path[0], path[1])]  # type: ignore[index]
            document = origin.document
            rest = path[2:]
            if rest and isinstance(rest[0], str) and rest[0] in origin.fields:
                path = origin.fields[rest[0]] + rest[1:]
            else:
                path = origin.base + rest
        if document is None:
            return (1, 1)
        doc = self.src.documents[document]
        return source.locate_in_tree(doc.tree, path, at_key=at_key)


def load_config(
    path: Path,
    *,
    display: str | None = None,
    text: str | None = None,
    variables: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
    resources: bool = True,
) -> LoadedConfig:
    """Read, render if templated, parse and validate; raise ConfigError carrying every error.

    With `cache_dir`, an unchanged valid file is not parsed or checked again (config/cache.py);
    with `resources=False` as well, a cached file may come back `partial`: settings only.
    """
    from skyplan.config import cache, template

    display = display or str(path)
    location = str(path.absolute())
    if source.SURROGATE.search(location):
        # A folder or file name that is not UTF-8: Python holds its odd bytes as surrogates, and
        # the lock, the state and saved plans, which record the path, could not be written.
        message = f"the path '{_escaped(location)}' is not valid UTF-8, which skyplan needs to record it: rename it"
        raise ConfigError([Diagnostic(message, file=_escaped(display))])
    if text is None:
        text = source.read_text(path, display)
    if template.is_template(path, variables):
        text = template.render(text, display, variables or {})
        display = f"{display} (rendered)"  # positions below are in the rendered text
    digest = text_digest(text)
    key = cache.key_of(digest, display) if cache_dir is not None else ""
    if cache_dir is not None:
        cached = _from_cache(cache_dir, key, path, display, resources)
        if cached is not None:
            cached.digest = digest
            return cached
    with collector.paused():
        loaded = _load_fast(text, path, display) or build_config(source.parse(text, path, display))
    loaded.digest = digest
    url = loaded.config.backend.url
    if cache_dir is not None and not loaded.diagnostics and not (url and has_password(url)):
        # A configuration holding a database password is never copied into the cache.
        loaded.cache_key, loaded.cache_dir = key, cache_dir
    return loaded


def remember(loaded: LoadedConfig, workspace: Path) -> None:
    """Store `loaded` in its cache entry, if it has one; operations call this after success."""
    if loaded.cache_key is None or loaded.cache_dir is None:
        return
    from skyplan.config import cache
    from skyplan.sdk import provider_ref

    cache.store(loaded.cache_dir, loaded.cache_key, workspace, loaded.config, provider_ref(loaded.provider_class.name), loaded.settings)


def text_digest(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _load_fast(text: str, path: Path, display: str) -> LoadedConfig | None:
    fast = source.parse_fast(text, path, display)
    if fast is None:
        return None
    try:
        loaded = build_config(fast)
    except ConfigError:
        return None  # parsed again with positions, for located messages
    return None if loaded.diagnostics else loaded  # warnings need positions too


def _from_cache(cache_dir: Path, key: str, path: Path, display: str, resources: bool) -> LoadedConfig | None:
    from skyplan.config import cache
    from skyplan.sdk import WorkspacePaths, provider_class_from_ref

    paths = WorkspacePaths.for_config(path)
    document = None if resources else cache.load(cache_dir, key, paths.root, cache.SETTINGS_FILE)
    if document is None:
        resources = True  # the whole entry serves too
        document = cache.load(cache_dir, key, paths.root)
    if document is None or not isinstance(document.get("provider"), dict):
        return None
    # Another provider version may judge the file differently: its cache entry is not used.
    cls = provider_class_from_ref(document["provider"])
    if cls is None:
        return None
    revived = cache.revive(document, Config, cls)
    if revived is None:
        return None
    config, settings = revived
    return LoadedConfig(path=path, display=display, config=config, settings=settings, provider_class=cls, partial=not resources)


def build_config(src: source.Source) -> LoadedConfig:
    not_text = _lone_surrogates(src)
    if not_text:
        # Reported alone: the messages of later checks would quote these values, and nothing
        # that holds one can be written to a state, a plan or a path.
        raise ConfigError(not_text)
    diagnostics: list[Diagnostic] = []
    main, extra_clusters, extra_links, locator = _split_documents(src, diagnostics)
    config, settings, provider_cls = _validate_sections(main, extra_clusters, extra_links, locator, diagnostics)

    provider = None
    if config is not None:
        from skyplan.config import rules

        if settings is not None and provider_cls is not None:
            # The provider's own rules are methods of a configured provider (its `validate`):
            # one is built for them and dropped; the workspace builds the one that works.
            from skyplan.sdk import WorkspacePaths
            from skyplan.workspace import make_provider

            provider = make_provider(provider_cls, settings, WorkspacePaths.for_config(src.path))
        config, mesh_origins = rules.expand_meshes(config, diagnostics)
        for index, mesh_index in mesh_origins.items():
            locator.origins[("links", index)] = _Origin(locator.main or 0, ("meshes", mesh_index))
        # The core rules run even when the provider block is wrong: every mistake at once.
        diagnostics.extend(rules.check(config, provider))

    located = [d.located(src.display, locator(d.path, d.at_key)) if d.file is None else d for d in diagnostics]
    located.sort(key=lambda d: (d.line or 0, d.column or 0, d.message))
    if errors_in(located) or config is None or provider is None:
        raise ConfigError(located)
    return LoadedConfig(
        path=src.path,
        display=src.display,
        config=config,
        settings=settings,  # type: ignore[arg-type]
        provider_class=provider_cls,  # type: ignore[arg-type]
        diagnostics=located,
    )


def _lone_surrogates(src: source.Source) -> list[Diagnostic]:
    """A located error for each key or value holding a lone surrogate ("\\udcff").

    YAML's \\u escapes can make one, and so can a template variable read from a file name that
    is not UTF-8; it is no character, and every later step that encodes text would fail on it.
    Only the careful parse is walked: `source.parse_fast` leaves any text that may hold one to it.
    """
    found: list[Diagnostic] = []
    for doc in src.documents:
        if doc.tree is None:
            continue
        pending: list[tuple[DocPath, Any]] = [((), doc.data)]
        while pending:
            path, value = pending.pop()
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str) and source.SURROGATE.search(key):
                        found.append(_surrogate_diagnostic(src, doc, path + (key,), key, at_key=True))
                    pending.append((path + (key,), item))
            elif isinstance(value, list):
                pending.extend((path + (i,), item) for i, item in enumerate(value))
            elif isinstance(value, str) and source.SURROGATE.search(value):
                found.append(_surrogate_diagnostic(src, doc, path, value))
    return sorted(found, key=lambda d: (d.line or 0, d.column or 0))


def _surrogate_diagnostic(src: source.Source, doc: source.Document, path: DocPath, text: str, at_key: bool = False) -> Diagnostic:
    found = source.SURROGATE.search(text)
    assert found is not None
    where = _escaped(format_path(path)) + ": " if path else ""
    # A value is never quoted: it may be a database URL whose password holds the surrogate.
    what = f"key '{_escaped(text if len(text) <= 60 else text[:57] + '…')}'" if at_key else f"the value, at character {found.start() + 1},"
    message = (
        f"{where}{what} holds a lone surrogate ({_escaped(found.group())}), "
        "which is not a character: write the text itself in UTF-8"
    )
    return Diagnostic(message).located(src.display, source.locate_in_tree(doc.tree, path, at_key=at_key))


def _escaped(text: str) -> str:
    # As the escape that made it: printed raw, a surrogate fails or shows as garbage.
    return source.SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _split_documents(src: source.Source, diagnostics: list[Diagnostic]):
    """Find the one skyplan document and turn manifests into clusters and links entries."""
    main: int | None = None
    clusters: list[tuple[dict, _Origin]] = []
    links: list[tuple[dict, _Origin]] = []
    for doc in src.documents:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            diagnostics.append(
                Diagnostic(f"a document must be a mapping, not {_type_name(doc.data)}").located(src.display, doc.position)
            )
            continue
        if "kind" in doc.data:
            _read_manifest(src, doc, clusters, links, diagnostics)
        elif main is None:
            main = doc.index
        else:
            diagnostics.append(
                Diagnostic(
                    "a second skyplan document in one file; only SkyShift manifests (kind: Link) may follow the first"
                ).located(src.display, doc.position)
            )
    locator = _Locator(src, main)
    return main, clusters, links, locator


def _read_manifest(src, doc, clusters, links, diagnostics) -> None:
    from skyplan.config import manifests

    kind = doc.data.get("kind")
    model = manifests.MANIFEST_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = " or ".join(f"'{k}'" for k in manifests.MANIFEST_KINDS)
        where = source.locate_in_tree(doc.tree, ("kind",))
        diagnostics.append(Diagnostic(f"kind: unsupported kind {kind!r}; skyplan reads {known}").located(src.display, where))
        return
    try:
        manifest = model.model_validate(doc.data)
    except ValidationError as exc:
        for diagnostic in _from_validation_error(exc, (), model):
            at = source.locate_in_tree(doc.tree, diagnostic.path, at_key=diagnostic.at_key)
            diagnostics.append(diagnostic.located(src.display, at))
        return
    if isinstance(manifest, manifests.LinkManifest):
        links.append((manifests.link_entry(manifest), _Origin(doc.index, ("spec",), manifests.LINK_FIELD_PATHS)))
    else:
        clusters.append((manifests.cluster_entry(manifest), _Origin(doc.index, ("spec",), manifests.CLUSTER_FIELD_PATHS)))


def _validate_sections(main, extra_clusters, extra_links, locator, diagnostics):
    """Validate each section and each list entry on its own, so one bad entry hides no other."""
    data: dict[str, Any] = {}
    if main is not None:
        data = locator.src.documents[main].data
    elif not extra_clusters and not extra_links:
        diagnostics.append(Diagnostic("the file is empty; expected 'version: 1' and clusters and links", path=()))
        return None, None, None
    else:
        data = {"version": 1}  # a file of manifests alone: defaults for everything else

    ok = True
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            diagnostics.append(Diagnostic(_unknown_key_message(key, TOP_LEVEL_KEYS, "top level"), path=(key,), at_key=True))
            ok = False
    if "version" not in data:
        diagnostics.append(Diagnostic("missing required key 'version' (use version: 1)", path=()))
        ok = False
    elif data["version"] != 1 or isinstance(data["version"], bool):
        diagnostics.append(Diagnostic(f"version: unsupported version {data['version']!r}; this skyplan reads version 1", path=("version",)))
        ok = False

    provider_block, settings, provider_cls = _validate_provider(data.get("provider"), diagnostics)
    backend = _validate_one(BackendSpec, data.get("backend", {}), ("backend",), diagnostics)

    sections: dict[str, list] = {}
    for key, model, extra in (("clusters", ClusterSpec, extra_clusters), ("links", LinkSpec, extra_links), ("meshes", MeshSpec, []), ("moved", MovedSpec, [])):
        raw = data.get(key, [])
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            diagnostics.append(Diagnostic(f"{key}: expected a list, got {_type_name(raw)}", path=(key,)))
            ok = False
            raw = []
        for offset, (entry, origin) in enumerate(extra):
            locator.origins[(key, len(raw) + offset)] = origin
        items = list(raw) + [entry for entry, _ in extra]
        valid = _validate_list(model, items, (key,), diagnostics)
        ok = ok and valid is not None
        sections[key] = valid or []

    if not ok or backend is None:
        return None, settings, provider_cls
    config = Config.model_construct(
        version=1,
        provider=provider_block or ProviderBlock(),
        backend=backend,
        clusters=sections["clusters"],
        links=sections["links"],
        meshes=sections["meshes"],
        moved=sections["moved"],
    )
    return config, settings, provider_cls


def _validate_provider(raw: Any, diagnostics: list[Diagnostic]):
    from skyplan.sdk import installed_providers, provider_class

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        diagnostics.append(Diagnostic(f"provider: expected a mapping, got {_type_name(raw)}", path=("provider",)))
        return None, None, None
    block = _validate_one(ProviderBlock, raw, ("provider",), diagnostics)
    if block is None:
        return None, None, None
    try:
        cls = provider_class(block.name)
    except ProviderError as exc:
        path = ("provider", "name") if "name" in raw else ("provider",)
        message = str(exc)
        close = difflib.get_close_matches(block.name, list(installed_providers()), n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
        diagnostics.append(Diagnostic(f"provider.name: {message}", path=path))
        return block, None, None
    settings = _validate_one(cls.settings_model, block.settings(), ("provider",), diagnostics, extra_fields=("name",))
    return block, settings, cls


def _validate_one(model, value, path: DocPath, diagnostics, extra_fields: tuple[str, ...] = ()):
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        diagnostics.extend(_from_validation_error(exc, path, model, extra_fields))
        return None


_adapters: dict[type, TypeAdapter] = {}


def _validate_list(model, items: list, path: DocPath, diagnostics) -> list | None:
    adapter = _adapters.setdefault(model, TypeAdapter(list[model]))
    try:
        return adapter.validate_python(items)
    except ValidationError as exc:
        diagnostics.extend(_from_validation_error(exc, path, list[model]))
        return None


def _from_validation_error(exc: ValidationError, prefix: DocPath, model, extra_fields: tuple[str, ...] = ()) -> list[Diagnostic]:
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        full = prefix + loc
        kind = error["type"]
        if kind == "extra_forbidden":
            known = tuple(_fields_at(model, loc[:-1])) + extra_fields
            where = format_path(full[:-1]) or "top level"
            found.append(Diagnostic(_unknown_key_message(str(loc[-1]), known, where), path=full, at_key=True, where=where))
        elif kind == "missing":
            where = format_path(full[:-1])
            found.append(Diagnostic(f"{where + ': ' if where else ''}missing required key '{loc[-1]}'", path=full[:-1]))
        elif kind == "model_type" or kind == "dict_type":
            found.append(Diagnostic(f"{format_path(full)}: expected a mapping, got {_type_name(error.get('input'))}", path=full))
        elif kind == "list_type":
            found.append(Diagnostic(f"{format_path(full)}: expected a list, got {_type_name(error.get('input'))}", path=full))
        else:
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            if kind != "value_error" and isinstance(value, str | int | float | bool) and len(repr(value)) <= 60:
                message += f", got {_show(value)}"
            found.append(Diagnostic(f"{format_path(full)}: {message}", path=full))
    return found


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} ({_type_name(value)})"


def _unknown_key_message(key: str, known, where: str) -> str:
    message = f"{where}: unknown key '{key}'"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean '{close[0]}'?"
    return message


def _fields_at(annotation, loc: tuple) -> list[str]:
    """Field names of the model reached by following `loc` from `annotation`."""
    current = annotation
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return _keys_of(current)
    if typing.get_origin(current) is list:
        inner = _unwrap(typing.get_args(current)[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return _keys_of(inner)
    return []


def _keys_of(model: type[BaseModel]) -> list[str]:
    """The keys the file spells: a field's alias where it has one (`moved[].from`)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _unwrap(annotation):
    # `X | None` -> X
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType")) and len(args) == 1:
        return args[0]
    return annotation


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
