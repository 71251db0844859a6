"""`skyplan import`: adopt configuration files another tool wrote, as links.yaml, state and keys.

The provider says what the files amount to (`Provider.import_configs`); this module does the
rest the way every other command does it: the configuration is written in the canonical layout
and checked by the same loader that `validate` runs, the state goes through the workspace's
store under its lock, and nothing is written when anything is wrong. Writes happen in an order
that a crash cannot turn into lost keys: the provider's key files first, then links.yaml (created,
never written over), then the state; a workspace left between the last two plans creates that
adopt the keys already there.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import ConfigError, ConfigImportError, StateError, UnsafePathError
from skyplan.sdk import ImportHost, ImportRequest, ImportResponse, ImportSource, Provider, WorkspacePaths, provider_class
from skyplan.sdk.registry import DEFAULT_PROVIDER

# A configuration file of one interface is a few kilobytes; a huge one is refused unread.
MAX_SOURCE_BYTES = 1 << 20
HEADER = "# Written by `skyplan import` from existing configuration files; edit it like any links.yaml.\n"


@dataclass(frozen=True)
class ImportPreview:
    """What an import would write: links.yaml's text, and what the provider found."""

    out: Path
    out_display: str
    text: str
    sources: list[ImportSource]
    response: ImportResponse
    provider: type[Provider]
    loaded: Any  # the configuration `text` loads as (config/loader.py's LoadedConfig)
    hosts: tuple[ImportHost, ...] = ()

    @property
    def resources(self) -> list[str]:
        document = self.response.document
        return [f"cluster.{c['name']}" for c in document.get("clusters", [])] + [
            f"link.{link['name']}" for link in document.get("links", [])
        ]


def cluster_names(paths: list[Path]) -> list[str]:
    """One name per file: its stem, or, when every file has the same stem (`<name>/wg0.conf`,
    as /etc/wireguard trees are copied from each host), its folder's name."""
    stems = [p.stem for p in paths]
    if len(paths) > 1 and len(set(stems)) == 1:
        return [p.absolute().parent.name for p in paths]
    return stems


def read_source(path: Path, display: str, name: str) -> ImportSource:
    """The text of one file the user named. A symlink is followed (the user named it), but
    nothing of the file is ever quoted: it may be anything."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise _fail(display, "no such file") from None
    except OSError as exc:
        raise _fail(display, f"cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(display, "is a directory, not a configuration file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(display, "is not a regular file")
        if info.st_size > MAX_SOURCE_BYTES:
            raise _fail(display, f"is {info.st_size} bytes; the limit is {MAX_SOURCE_BYTES}")
        raw = os.read(fd, MAX_SOURCE_BYTES + 1)
        if len(raw) > MAX_SOURCE_BYTES:
            raise _fail(display, f"is more than {MAX_SOURCE_BYTES} bytes, the limit")
    except OSError as exc:
        raise _fail(display, f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(display, "is not UTF-8 text") from None
    return ImportSource(display=display, text=text.removeprefix("\ufeff"), name=name)


def _fail(display: str, message: str) -> ConfigImportError:
    return ConfigImportError(diagnostics=[Diagnostic(message, file=display)])


def host_of(text: str) -> tuple[ImportHost | None, Diagnostic | None]:
    """`--gateway [NAME=]GATEWAY`: the host, named NAME or after its host name or alias."""
    from skyplan.config.gateway import GATEWAY_RULE, parse_gateway
    from skyplan.config.rules import name_problem

    name, sep, address = text.partition("=")
    if not sep or "://" in name:
        name, address = "", text
    try:
        parsed = parse_gateway(address)
    except ValueError as exc:
        return None, Diagnostic(f"{exc} (want [NAME=]{GATEWAY_RULE})", file=f"--gateway {_shown(text)}")
    if not name:
        name = parsed.host.rstrip(".")
        if name_problem(name):
            return None, Diagnostic(f"'{name}' is no cluster name: name it, as --gateway NAME={address}", file=f"--gateway {address}")
    problem = name_problem(name)
    if problem:
        return None, Diagnostic(f"cluster name '{_shown(name)}' is not valid: {problem}", file=f"--gateway {_shown(text)}")
    return ImportHost(address=address, name=name), None


def _shown(text: str) -> str:
    from skyplan.render.errors import one_line

    return one_line(text)[:200]


def preview(confs: list[str], out: str, settings: dict, gateways: list[str] = ()) -> ImportPreview:
    """What importing `confs` and the live `gateways` into `out` would write; ConfigImportError
    with every problem if it cannot."""
    from skyplan.config.rules import name_problem

    paths = [Path(c) for c in confs]
    problems: list[Diagnostic] = []
    hosts: list[ImportHost] = []
    for text in gateways:
        host, problem = host_of(text)
        if problem is not None:
            problems.append(problem)
        else:
            hosts.append(host)
    sources: list[ImportSource] = []
    for path, display, name in zip(paths, confs, cluster_names(paths)):
        problem = name_problem(name)
        if problem:
            problems.append(
                Diagnostic(f"cluster name '{name}' (from the file's name) is not valid: {problem}; rename the file", file=display)
            )
            continue
        try:
            sources.append(read_source(path, display, name))
        except ConfigImportError as exc:
            problems.extend(exc.diagnostics)
    seen: dict[str, str] = {}
    for name, display in [(s.name, s.display) for s in sources] + [(h.name, f"--gateway {h.address}") for h in hosts]:
        if name in seen:
            problems.append(Diagnostic(f"names cluster '{name}', as {seen[name]} does; rename one", file=display))
        seen.setdefault(name, display)
    out_path = Path(out)
    _refuse_existing(out_path, out, problems)
    if problems:
        raise ConfigImportError(diagnostics=problems)

    provider = provider_class(DEFAULT_PROVIDER)
    if not provider.can_import:
        raise ConfigImportError(f"provider '{provider.name}' cannot import configuration files")
    root = WorkspacePaths.for_config(out_path).root
    response = provider.import_configs(ImportRequest(sources=sources, settings=settings, hosts=hosts, root=root))
    if response.diagnostics:
        raise ConfigImportError(diagnostics=response.diagnostics)
    text = render_document(response.document, out)
    loaded = _check(text, out_path, out)
    _refuse_a_used_state(out_path)
    return ImportPreview(out_path, out, text, sources, response, provider, loaded, tuple(hosts))


def _refuse_a_used_state(out_path: Path) -> None:
    """Said before anything is asked for: the write checks again, under the lock."""
    from skyplan.config.models import BackendSpec
    from skyplan.workspace import make_store

    store, _ = make_store(BackendSpec(), WorkspacePaths.for_config(out_path))
    try:
        _check_unused(store, store.read())
    finally:
        store.close()


def _check_unused(store, prior) -> None:
    if prior is not None and prior.resources:
        raise StateError(
            f"the state at {store.describe()} already holds {len(prior.resources)} resources; "
            "import starts a workspace and never adds to one"
        )


def _refuse_existing(out_path: Path, out: str, problems: list[Diagnostic]) -> None:
    if out_path.exists() or out_path.is_symlink():
        problems.append(Diagnostic("exists already; import never writes over a configuration: choose another with --out", file=out))
    elif not out_path.absolute().parent.is_dir():
        problems.append(Diagnostic("cannot be written: its folder does not exist", file=out))


def render_document(document: dict, display: str) -> str:
    """links.yaml holding `document`, in the canonical layout `skyplan fmt` writes."""
    from skyplan.config.fmt import main_layout, render_canonical

    provider = document.get("provider", {}).get("name", DEFAULT_PROVIDER)
    data = {"version": 1, **{key: value for key, value in document.items() if value}}
    return render_canonical(data, main_layout(provider, _provider_fields), header=HEADER)


def _provider_fields(name: str) -> tuple[str, ...] | None:
    from skyplan.errors import ProviderError

    try:
        return tuple(provider_class(name).settings_model.model_fields)
    except ProviderError:
        return None


def _check(text: str, out_path: Path, out: str):
    """The written file must load as any links.yaml does: what the files amount to may still
    break a rule of links.yaml (two clusters routing one subnet)."""
    from skyplan.config.loader import load_config

    try:
        return load_config(out_path, display=out, text=text)
    except ConfigError as exc:
        raise ConfigImportError(
            diagnostics=[Diagnostic(f"the imported configuration would not be valid: {d}") for d in exc.diagnostics]
        ) from None


def write(plan: ImportPreview, settings: dict, lock_timeout: float = 0.0) -> tuple[int, list[Path]]:
    """Write links.yaml, the state and the provider's keys; the state's serial and the key files."""
    from skyplan.config.models import BackendSpec
    from skyplan.plan.desired import desired_resources
    from skyplan.workspace import make_store

    loaded = plan.loaded
    paths = WorkspacePaths.for_config(plan.out)
    store, _ = make_store(BackendSpec(), paths)
    try:
        with _locked(store, lock_timeout):
            prior = store.read()
            _check_unused(store, prior)
            problems: list[Diagnostic] = []
            _refuse_existing(plan.out, plan.out_display, problems)
            if problems:
                raise ConfigImportError(diagnostics=problems)
            response = plan.provider.import_configs(
                ImportRequest(sources=plan.sources, settings=settings, write_to=paths, hosts=list(plan.hosts), root=paths.root)
            )
            if response.diagnostics:
                raise ConfigImportError(diagnostics=response.diagnostics)
            if (response.document, response.computed) != (plan.response.document, plan.response.computed):
                # A live host read again is not what the preview showed (a peer came or went).
                _remove(response.written, paths.root)
                raise ConfigImportError("what the gateways run changed while the import was asked for; nothing was written: run it again")
            try:
                from skyplan import atomic

                atomic.write_new(plan.out.absolute(), plan.text.encode("utf-8"), 0o644, within=paths.root)
            except (OSError, UnsafePathError) as exc:
                _remove(response.written, paths.root)
                if isinstance(exc, OSError) and exc.errno == errno.EEXIST:
                    raise _fail(plan.out_display, "exists already; import never writes over a configuration") from None
                raise _fail(plan.out_display, f"cannot be written: {getattr(exc, 'strerror', None) or exc}") from None
            desired = desired_resources(loaded.config, plan.provider, loaded.settings)
            state = _state(prior, desired, response.computed, plan.provider.schema_version)
            try:
                store.write(state)
            except BaseException:
                _remove([*response.written, plan.out.absolute()], paths.root)
                raise
    finally:
        store.close()
    return state.serial, response.written


class _locked:
    def __init__(self, store, timeout: float):
        self.store, self.timeout, self.info = store, timeout, None

    def __enter__(self):
        self.info = self.store.lock("import", self.timeout)
        return self.info

    def __exit__(self, *exc) -> None:
        self.store.unlock(self.info.id)


def _state(prior, desired, computed: dict[str, dict], schema_version: int):
    from skyplan.state.model import ResourceState, ResourceStatus, State, now_iso

    now = now_iso()
    status = ResourceStatus(phase="INIT", since=now)
    resources = {
        address: ResourceState(
            type=item.type,
            name=item.name,
            managed_by="file",
            attributes=item.attributes,
            computed=computed.get(address, {}),
            status=status,
            created=now,
            schema_version=schema_version,
        )
        for address, item in desired.items()
    }
    base = prior if prior is not None else State.new()
    return base.with_resources(resources, serial=base.serial + 1)


def _remove(files: list[Path], within: Path) -> None:
    """Undo what an import that failed later had written; what cannot go is left for plan to adopt."""
    from skyplan import atomic

    for file in files:
        try:
            atomic.remove(file, within)
        except (OSError, UnsafePathError):
            pass
