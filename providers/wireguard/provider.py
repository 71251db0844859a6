"""The WireGuard provider: turns clusters and links into keys, addresses and wg-quick files."""

from __future__ import annotations

import ipaddress
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

from skyplan.sdk import (
    ApplyRequest,
    Diagnostic,
    Display,
    ImportRequest,
    ImportResponse,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadRequest,
    ReadResponse,
    Reading,
    ResourceResult,
    ResourceView,
    StatusRequest,
    StatusResponse,
    UnsafePathError,
    ValidateRequest,
    ValidateResponse,
    atomic,
    parse_network,
)
from skyplan_wireguard import addresses, conf, gateways, hooks, keys, psk, validation
from skyplan_wireguard.arguments import ClusterArguments, LinkArguments
from skyplan_wireguard.computed import ClusterComputed
from skyplan_wireguard.settings import CLUSTER_SETTINGS, SCHEMA_VERSION, WireGuardSettings


class WireGuardProvider(Provider):
    name = "wireguard"
    settings_model = WireGuardSettings
    cluster_settings = CLUSTER_SETTINGS
    # A cluster's own values win over the provider's defaults.
    cluster_overrides = {"listen_port": "listen_port", "mtu": "mtu", "persistent_keepalive": "persistent_keepalive"}
    link_defaults = {"preshared_key": "preshared_keys"}
    computed_attributes = {"cluster": ("address", "public_key")}
    computed_models = {"cluster": ClusterComputed}
    argument_models = {"cluster": ClusterArguments, "link": LinkArguments}
    schema_version = SCHEMA_VERSION
    display_spec = {"cluster": Display(columns=(("ADDRESS", "address"),), status=("address", "public_key"))}
    # A key lives where it was born: a cluster that moves to (or off) a gateway gets a new one.
    replace_on_change = {"cluster": {"gateway": "its gateway changed: a new key is generated where it now lives"}}
    # An external peer's key lives elsewhere: becoming one (or no longer being one) swaps keys.
    replace_on_presence = {
        "cluster": {"public_key": "it became or stopped being an external peer: its key now lives elsewhere"}
    }

    settings: WireGuardSettings
    # `skyplan import`: wg-quick files that another tool wrote become clusters and links (importer.py).
    can_import = True

    @classmethod
    def import_configs(cls, request: ImportRequest) -> ImportResponse:
        from skyplan_wireguard import importer

        return importer.import_configs(request)

    # -- upgrade -------------------------------------------------------------------------------

    def upgrade(self, view: ResourceView, from_version: int) -> ResourceView:
        """A cluster recorded before a setting existed gets the setting's default: what this
        provider did before it could be set. Settings it records are kept as they are."""
        if view.type != "cluster":
            return view
        missing = [name for name in self.cluster_settings if name not in view.attributes]
        if not missing:
            return view
        fields = self.settings_model.model_fields
        filled = {name: fields[name].get_default(call_default_factory=True) for name in missing}
        return view._replace(attributes={**view.attributes, **filled})

    # -- paths ---------------------------------------------------------------------------------

    def config_path(self, cluster: ResourceView) -> Path:
        attributes = cluster.attributes
        return _config_path(self.paths.root, attributes["output_dir"], cluster.name, attributes["interface"])

    def key_path(self, name: str) -> Path:
        return _key_path(self.paths.data, name)

    def within(self, path: Path) -> Path:
        """The folder that config or key file `path` is reached from, following no symlink below it:
        the workspace, or an output_dir outside it, which links.yaml names and so is taken as it is."""
        root = self.paths.root
        return root if os.fspath(path).startswith(os.path.join(root, "")) else path.parent.parent

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.paths.root))
        except ValueError:
            return str(path)

    def reason(self, exc: Exception, path: Path | None = None) -> str:
        """What went wrong with a file: the OS's words, and the path when it is not `path` itself."""
        if isinstance(exc, OSError) and exc.strerror:
            where = Path(exc.filename) if exc.filename else None
            return exc.strerror if where in (None, path) else f"{exc.strerror}: {self.display(where)}"
        return str(exc)

    # -- validate ------------------------------------------------------------------------------

    def validate(self, request: ValidateRequest) -> ValidateResponse:
        found: list[Diagnostic] = []
        pool = ipaddress.ip_network(self.settings.address_pool)
        room = addresses.usable_count(self.settings.address_pool)
        if len(request.clusters) > room:
            found.append(
                Diagnostic(
                    f"provider.address_pool: {pool} has room for {room} clusters, but {len(request.clusters)} are defined",
                    path=("provider", "address_pool"),
                )
            )
        for i, cluster in enumerate(request.clusters):
            for j, text in enumerate(cluster.attributes.get("subnets", [])):
                try:
                    network = parse_network(text)
                except ValueError:
                    continue  # reported by the core rules
                if network.version == pool.version and network.overlaps(pool):
                    found.append(
                        Diagnostic(
                            f"clusters[{i}].subnets[{j}]: {network} overlaps the address pool {pool}",
                            path=("clusters", i, "subnets", j),
                        )
                    )
        found.extend(validation.check_clusters(request.clusters, self.settings))
        found.extend(validation.check_links(request.clusters, request.links))
        return ValidateResponse(found)

    # -- shared by read and apply ----------------------------------------------------------------

    def _cluster_conf(
        self,
        cluster: ResourceView,
        world: dict[str, ResourceView],
        peering: dict[str, dict[str, list[str]]],
        seen: dict | None = None,
        psks: Mapping[frozenset, str] | None = None,
    ) -> conf.ClusterConf:
        """What `cluster`'s file holds, given every resource of the world it lives in.

        `seen` memoises how each peer looks to others, which is the same in all their files, and
        the world's transit groups. A peering that wants a preshared key gets its value from
        `psks` (by frozenset of the two names), or conf.PSK_PLACEHOLDER when it is not at hand.
        """
        seen = {} if seen is None else seen
        transit = seen.get(_TRANSIT)
        if transit is None:
            transit = seen[_TRANSIT] = _Transit.of(world)
        keepalive = cluster.attributes["persistent_keepalive"]
        routed = bool(transit.groups or transit.preshared)  # a world without either pays nothing more
        peers = []
        for peer_name, link_names in sorted(peering.get(cluster.name, {}).items()):
            identity = seen.get(peer_name)
            public, endpoint, allowed = identity if identity is not None else _identity(peer_name, world, seen)
            preshared = None
            if routed:
                allowed = (*allowed, *transit.routes(cluster.name, peer_name, world, seen))
                pair = frozenset((cluster.name, peer_name))
                if pair in transit.preshared:
                    preshared = (psks or {}).get(pair, conf.PSK_PLACEHOLDER)
            # Most peerings have one link: nothing to sort.
            links = tuple(link_names) if len(link_names) == 1 else tuple(sorted(link_names))
            peers.append(conf.PeerConf(peer_name, links, public, endpoint, allowed, keepalive, preshared))
        return conf.ClusterConf(
            cluster=cluster.name,
            address=conf.host_prefix(cluster.computed["address"]),
            listen_port=cluster.attributes["listen_port"],
            mtu=cluster.attributes.get("mtu"),
            peers=tuple(peers),
            forward=cluster.name in transit.groups,
        )

    @staticmethod
    def _peering(world: dict[str, ResourceView]) -> dict[str, dict[str, list[str]]]:
        """cluster -> peer -> names of the links that join them (several links share a peering)."""
        peering: dict[str, dict[str, list[str]]] = {}
        for view in world.values():
            if view.type == "link":
                attributes = view.attributes  # the ends, without a LinkEnds per link: read per plan
                source, target, name = attributes["source"], attributes["target"], view.name
                peering.setdefault(source, {}).setdefault(target, []).append(name)
                peering.setdefault(target, {}).setdefault(source, []).append(name)
        return peering

    # -- read ----------------------------------------------------------------------------------

    def read(self, request: ReadRequest) -> ReadResponse:
        # Two files of every cluster, from a few folders: each folder is walked to once.
        with atomic.kept_folders():
            return self._read(request)

    def _read(self, request: ReadRequest) -> ReadResponse:
        world = {view.address: view for view in request.resources}
        clusters = {view.name: view for view in request.resources if view.type == "cluster"}
        readings: dict[str, Reading] = {}
        diagnostics: list[Diagnostic] = []  # files that cannot be read: the plan stops
        parsed: dict[str, conf.ParsedConf | None] = {}  # only files that differ from what we wrote
        seen: dict = {}

        live = {name: view for name, view in clusters.items() if gateways.is_gateway(view)}
        seen[_TRANSIT] = transit = _Transit.of(world)
        psks = self._stored_preshared_keys(_local_psk_peerings(world, transit), request.previous_names, diagnostics)
        # A world this provider refreshed before (the same state, code, settings, workspace)
        # whose files all hold exactly what they held when that refresh found no drift has none
        # now either: the files are read (and their keys checked) as always, but no public key
        # is derived and no config rendered to compare. Gateways are read live, always.
        memo = request.memo if not live and not diagnostics else None
        files = self._local_files(clusters) if memo is not None else None
        fingerprint = _fingerprint(psks, files) if files is not None else None
        if fingerprint is not None and memo.recall() == fingerprint:
            return ReadResponse({}, [])
        peering = self._peering(world)
        if live:
            self._read_gateways(live, world, peering, request.pending, readings, parsed, diagnostics, psks, seen)
        for name, cluster in sorted(clusters.items()):
            if name in live or is_external(cluster):
                continue  # an external peer has nothing here to read
            # A move that an interrupted run left unfinished may have left the files under the old name.
            old = request.previous_names.get(cluster.address)
            key_path = self.key_path(name)
            path = self.config_path(cluster)
            known = files.get(name) if files is not None else None
            try:
                private = known[0] if known is not None else keys.read(key_path, self.within(key_path))
                if private is None and old is not None:
                    key_path = self.key_path(old)
                    private = keys.read(key_path, self.within(key_path))
            except keys.KeyFileError as exc:
                diagnostics.append(
                    Diagnostic(f"{exc}. Restore it from a backup, or delete it to have skyplan plan a new key for cluster '{name}'")
                )
                parsed[name] = None
                continue
            except UnsafePathError as exc:
                diagnostics.append(Diagnostic(str(exc)))
                parsed[name] = None
                continue
            recorded_public = cluster.computed.get("public_key")
            # Derived once per cluster: refresh reads every key file on every plan.
            public = keys.public_key(private) if private is not None else None
            if public is not None and recorded_public is not None and public != recorded_public:
                # Another machine applied with keys of its own (shared state): taking this key
                # would swap it in the state under every peer. Never silently: stop the plan.
                readings[cluster.address] = Reading(
                    cluster.address,
                    expected={"key_file_public_key": recorded_public},
                    found={"key_file_public_key": public},
                    conflict=True,
                    reason=(
                        f"cluster.{name}: key file {self.display(key_path)} holds public key {public}, but the state "
                        f"records {recorded_public} (did another machine apply with its own keys?). Nothing was "
                        f"changed: bring that machine's key file here, or give the cluster a new key with --replace cluster.{name}"
                    ),
                )
                parsed[name] = None
                continue
            if private is None:
                readings[cluster.address] = Reading(
                    cluster.address,
                    expected={"key_file": "present"},
                    found={"key_file": "missing"},
                    replace=True,
                    reason=f"key file {self.display(key_path)} is missing: a new key must be generated and every peer updated",
                )
            try:
                raw = known[1] if known is not None else atomic.read_bytes(path, self.within(path))
                if raw is None and old is not None:
                    path = self.config_path(ResourceView("cluster", old, cluster.attributes, cluster.computed))
                    raw = atomic.read_bytes(path, self.within(path))
            except OSError as exc:  # a folder in its place, say: apply could not write it either
                diagnostics.append(
                    Diagnostic(
                        f"config {self.display(path)} of cluster '{name}' cannot be read: {exc.strerror}. "
                        "Move it away to have skyplan write it again"
                    )
                )
                parsed[name] = None
                continue
            except UnsafePathError as exc:
                diagnostics.append(Diagnostic(str(exc)))
                parsed[name] = None
                continue
            if raw is None:
                parsed[name] = None
                if cluster.address not in readings:
                    readings[cluster.address] = Reading(
                        cluster.address,
                        expected={"config": "present"},
                        found={"config": "missing"},
                        reason=f"{self.display(path)} was deleted",
                    )
                continue
            text = raw.decode("utf-8", errors="replace")
            expected_conf = self._cluster_conf(cluster, world, peering, seen, psks)
            # A wanted key missing from the store shows as "differs" wherever a file holds one.
            wanted_psks = {peer.public_key: peer.preshared_key for peer in expected_conf.peers if peer.preshared_key}
            if private is None:
                parsed[name] = conf.parse(text, wanted_psks)
                continue
            complete = conf.PSK_PLACEHOLDER not in wanted_psks.values()
            # The common case, a file exactly as written, needs no parsing at all. Each peer's
            # section is rendered once for every file that holds it, as the apply renders them.
            sections = seen.setdefault(_SECTIONS, {})
            if complete and public == cluster.computed.get("public_key") and text == conf.render(expected_conf, private, sections):
                continue
            found = parsed[name] = conf.parse(text, wanted_psks)
            known_keys = {peer.public_key for peer in expected_conf.peers}
            expected = {
                "interface": expected_conf.interface(cluster.computed.get("public_key")),
                "key_file_public_key": cluster.computed.get("public_key"),
                "unmanaged_peers": [],
                "other_directives": {},
            }
            actual = {
                "interface": found.interface,
                "key_file_public_key": public,
                "unmanaged_peers": sorted(k for k in found.peers if k not in known_keys),
                "other_directives": found.extra,
            }
            if expected != actual:
                readings[cluster.address] = Reading(cluster.address, expected, actual, reason=f"{self.display(path)} differs")

        owner_peers: dict[str, dict[str, conf.PeerConf]] = {}  # each file's entries as expected, by peer
        # Only links with an end whose file differs from what was written have entries to compare:
        # when every file is exactly as written (the common case), no link is looked at.
        for view in request.resources if parsed else ():
            if view.type != "link":
                continue
            source, target = view.ends
            if source not in parsed and target not in parsed:
                continue  # both files are exactly as written
            expected, actual = {}, {}
            for owner, other in ((source, target), (target, source)):
                found = parsed.get(owner)
                if owner not in clusters or other not in clusters or found is None:
                    continue  # a missing file or cluster is the cluster's drift, reported there
                if owner not in owner_peers:
                    # The whole file: a transit hub's entry holds more than the two ends know.
                    owner_conf = self._cluster_conf(clusters[owner], world, peering, seen, psks)
                    owner_peers[owner] = {peer.cluster: peer for peer in owner_conf.peers}
                want = owner_peers[owner][other].comparable()
                expected[f"peer of {other} in {owner}"] = want
                actual[f"peer of {other} in {owner}"] = found.peers.get(want["public_key"])
            if expected != actual:
                readings[view.address] = Reading(view.address, expected, actual, reason="peer entries differ")
        if fingerprint is not None and not readings and not diagnostics:
            memo.keep(fingerprint)
        return ReadResponse(readings, diagnostics)

    def _local_files(self, clusters: dict[str, ResourceView]) -> dict[str, tuple[str, bytes]] | None:
        """Every local cluster's private key and config file as they are now, read as a refresh
        reads them (no symlink followed, keys checked); None when any is missing or cannot be
        taken, which the full refresh then reports as it always has.

        Each folder is opened once: the keys' folder, and every output folder the configs live
        below; 10,000 clusters are 20,000 reads, and walking to each file again cost more."""
        from skyplan.sdk import repository

        root = os.fspath(self.paths.root)
        keys_folder = os.fspath(self.paths.keys)
        opened: dict[str, int] = {}
        found: dict[str, tuple[str, bytes]] = {}
        try:
            keys_fd = opened[keys_folder] = atomic.open_folder(keys_folder, root)
            tracked = repository.tracked_names(keys_folder)
            for name, cluster in sorted(clusters.items()):
                if is_external(cluster):
                    continue
                attributes = cluster.attributes
                key_name, conf_name = f"{name}.key", f"{attributes['interface']}.conf"
                if key_name in tracked:
                    return None  # refused by the full refresh, with its reason
                raw_key = atomic.read_at(keys_fd, key_name, os.path.join(keys_folder, key_name), keys.FILE_LIMIT)
                private = keys.parse(raw_key) if raw_key is not None else None
                if private is None:
                    return None
                base = os.fspath(_output_base(self.paths.root, attributes["output_dir"]))
                base_fd = opened.get(base)
                if base_fd is None:
                    # Reached as `within` reaches it: from the workspace, or taken as it stands outside it.
                    base_fd = opened[base] = atomic.open_folder(base, root if base.startswith(os.path.join(root, "")) else base)
                raw = atomic.read_below(base_fd, name, conf_name, os.path.join(base, name, conf_name))
                if raw is None:
                    return None
                found[name] = (private, raw)
        except (OSError, UnsafePathError):
            return None
        finally:
            for fd in opened.values():
                os.close(fd)
        return found

    def _stored_preshared_keys(self, wanted: set[frozenset], previous_names: dict[str, str], diagnostics: list[Diagnostic]) -> dict[frozenset, str]:
        """The stored key of every peering that wants one kept here; a missing one is absent.
        A file that cannot be taken is an error that stops the plan, as a damaged key file does.
        A move that an interrupted run left unfinished may have left a key under the old names."""
        found: dict[frozenset, str] = {}
        folder, within = self.paths.keys, self.within(self.paths.keys)
        for peering in sorted(wanted, key=sorted):
            file = psk.path(folder, peering)
            try:
                value = psk.read(file, within)
                old = frozenset(previous_names.get(f"cluster.{name}", name) for name in peering)
                if value is None and old != peering:
                    file = psk.path(folder, old)
                    value = psk.read(file, within)
            except psk.PresharedKeyError as exc:
                a, b = sorted(peering)
                diagnostics.append(
                    Diagnostic(f"{exc}. Restore it from a backup, or delete it to have skyplan plan a new key for clusters '{a}' and '{b}'")
                )
                continue
            except UnsafePathError as exc:
                diagnostics.append(Diagnostic(str(exc)))
                continue
            if value is not None:
                found[peering] = value
        return found

    def _read_gateways(self, live, world, peering, pending, readings, parsed, diagnostics, stored_psks=None, seen=None) -> None:
        """Readings of the gateway clusters from their running interfaces (gateways.py).

        Preshared keys come back from the gateways as digests with one salt: a peering's key is
        compared with its other end's, another gateway's digest or the local store's key digested
        here (`stored_psks`), and never leaves a host. The connections stay open for an apply
        that follows in this process (`gateway_connections`). `seen`: read's memo of the world.
        """
        from skyplan_wireguard import remote

        problem = gateways.config_problem(self.settings, self.paths.root)
        if problem:
            diagnostics.append(Diagnostic(problem))
            return
        salt = remote.new_salt()
        seen = {} if seen is None else seen
        transit = seen.get(_TRANSIT)
        if transit is None:
            transit = seen[_TRANSIT] = _Transit.of(world)
        # Only an end of a peering that wants a preshared key has one whose digest means something.
        salted = {name for pair in transit.preshared for name in pair}
        conns = self.gateway_connections()
        found, problems = gateways.inspect_all(conns, self.settings, self.paths.root, [live[n] for n in sorted(live)], salt, salted)
        diagnostics.extend(problems)
        stored_psks = stored_psks or {}
        for name, interface in sorted(found.items()):
            cluster = live[name]
            expected_conf = self._cluster_conf(cluster, world, peering, seen)
            own_key = cluster.computed.get("public_key")
            digests = {}
            for peer in expected_conf.peers:
                if peer.preshared_key is None:
                    continue
                other = found.get(peer.cluster)
                if other is not None:
                    digest = other.psk_digests.get(own_key) if own_key else None
                else:
                    stored = stored_psks.get(frozenset((name, peer.cluster)))
                    digest = remote.psk_digest(salt, stored) if stored is not None else None
                if digest is not None:
                    digests[peer.public_key] = digest
            reading, peers, error = gateways.cluster_reading(cluster, expected_conf, interface, pending.get(cluster.address), digests)
            if error:
                diagnostics.append(Diagnostic(error))
                continue
            if reading is not None:
                readings[cluster.address] = reading
            if peers is not None:
                parsed[name] = conf.ParsedConf(interface={}, peers=peers, extra={})

    def gateway_connections(self):
        """The SSH connections to gateways, shared by a refresh and the apply that follows it in
        the same process: each gateway is logged in to once. Ended by the apply, or by close()."""
        if getattr(self, "_ssh_connections", None) is None:
            from skyplan_wireguard import ssh

            self._ssh_connections = ssh.Connections()
        return self._ssh_connections

    def close(self) -> None:
        """End the shared SSH connections, if any (Workspace.close calls this)."""
        conns, self._ssh_connections = getattr(self, "_ssh_connections", None), None
        if conns is not None:
            conns.close()

    # -- plan ----------------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanResponse:
        """Every cluster's address, allocated as apply will: the plan shows a renumbering. An
        external peer's public key is its argument, known now too."""
        clusters = [view for view in request.resources if view.type == "cluster"]
        pools = {view.name: view.attributes["address_pool"] for view in clusters}
        previous = {view.name: view.computed.get("address") for view in clusters}
        try:
            assigned = addresses.allocate(pools, previous, _pins(clusters))
        except ValueError as exc:
            return PlanResponse({}, [Diagnostic(str(exc))])
        planned = {f"cluster.{name}": {"address": address} for name, address in assigned.items()}
        for view in clusters:
            if is_external(view):
                planned[view.address]["public_key"] = view.attributes["public_key"]
        return PlanResponse(planned)

    # -- apply ---------------------------------------------------------------------------------

    def apply(self, request: ApplyRequest) -> Iterator[ResourceResult]:
        gateway_work = _GatewayWork(self)
        try:
            yield from self._apply(request, gateway_work)
        finally:
            gateway_work.close()

    def _apply(self, request: ApplyRequest, gateway_work: _GatewayWork) -> Iterator[ResourceResult]:
        world = dict(request.world)
        clusters = {view.name: view for view in world.values() if view.type == "cluster"}
        failed: dict[str, str] = {}  # cluster name -> why its key, file, reload or hook failed
        live = {name for name, view in clusters.items() if gateways.is_gateway(view)}
        # Every gateway this apply may change is reached before any is changed: a refused host key
        # then stops them all, rather than arriving while the others are already half done. One
        # that cannot be reached fails its own cluster's changes now, and is not tried again.
        # A workspace without gateways (the large local ones) pays nothing for them.
        any_gateway = bool(live) or any(
            change.before is not None and change.before.type == "cluster" and gateways.is_gateway(change.before)
            for change in request.changes
        )
        if any_gateway:
            for name, error in gateway_work.reach(_gateways_in_play(request)).items():
                failed.setdefault(name, error)

        # Deleted clusters go first: their files and keys are removed, nothing else depends on them.
        deleted_live = []
        for change in request.changes:
            if change.action == "delete" and change.before is not None and change.before.type == "cluster":
                if gateways.is_gateway(change.before):
                    deleted_live.append(change)
                    continue
                error = None if is_external(change.before) else self._remove_cluster(change.before)
                yield ResourceResult(change.address, ok=True) if error is None else ResourceResult.failed(change.address, error)
        if deleted_live:
            work = gateway_work.teardown([change.before for change in deleted_live if change.before.name not in failed])
            for change in deleted_live:
                error = failed.get(change.before.name) or work.errors.get(change.before.name)
                yield ResourceResult(change.address, ok=True) if error is None else ResourceResult.failed(change.address, str(error))

        stale_keys: list[Path] = []  # key files of clusters that moved and got a new key
        new_public: dict[str, str] = {}  # of keys made now: known without deriving them again
        with atomic.kept_folders():  # a key file looked for per cluster, all in one folder
            private_keys, new_keys = self._keys_for(request, failed, stale_keys, new_public)
        try:
            yield from self._apply_with_keys(request, gateway_work, world, clusters, failed, live, stale_keys, new_public, private_keys, new_keys)
        finally:
            new_keys.close()

    def _apply_with_keys(self, request, gateway_work, world, clusters, failed, live, stale_keys, new_public, private_keys, new_keys) -> Iterator[ResourceResult]:
        public_keys = gateway_work.keys(request, failed)

        pools = {name: view.attributes["address_pool"] for name, view in clusters.items()}
        previous = {name: view.computed.get("address") for name, view in clusters.items()}
        assigned = addresses.allocate(pools, previous, _pins(clusters.values()))
        external = set()
        as_requested = dict(clusters)

        def settle() -> None:
            """Each cluster with its address and public key, in `clusters` and `world`."""
            for name, view in as_requested.items():
                computed = dict(view.computed)
                computed["address"] = assigned[name]
                if name in private_keys:
                    computed["public_key"] = new_public.get(name) or keys.public_key(private_keys[name])
                elif name in public_keys:
                    computed["public_key"] = public_keys[name]
                elif is_external(view):
                    computed["public_key"] = view.attributes["public_key"]  # its key lives elsewhere
                    external.add(name)
                clusters[name] = ResourceView("cluster", name, view.attributes, computed)
                world[view.address] = clusters[name]

        settle()
        peering = self._peering(world)
        transit = _Transit.of(world)
        seen: dict = {_TRANSIT: transit}

        # A change is done once every file it affects is written and reloaded: a cluster's own
        # file and its peers' (they hold its key, endpoint and address), a link's two ends.
        subjects: set[str] = set()  # clusters a change names: always written, hook always run
        touched: set[str] = set()  # subjects and the peers they affect
        waiting: list[tuple[str, set[str]]] = []  # each change's address and the clusters it waits on
        stale_paths: list[tuple[str, Path]] = []
        groups = transit.groups
        for change in request.changes:
            view = change.after or change.before
            assert view is not None
            if view.type == "cluster" and change.action != "delete":
                # Transit spokes hold a member's networks in their entry for the hub.
                affected = {view.name, *peering.get(view.name, {}), *transit.related(view.name)}
                subjects.add(view.name)
                touched.update(affected)
                waiting.append((change.address, affected))
                old = change.before
                # A cluster now managed elsewhere (an external peer) leaves its config and key here.
                gone_external = old is not None and is_local(old) and is_external(clusters[view.name])
                if old is not None and (gone_external or self.config_path(old) != self.config_path(clusters[view.name])):
                    stale_paths.append((view.name, self.config_path(old)))
                if gone_external:
                    stale_keys.append(self.key_path(old.name))
            elif view.type == "link":
                ends = set()
                for side in (change.before, change.after):
                    if side is not None:
                        # Read from the dict: a full mesh has 20,000 links, each seen here.
                        attributes = side.attributes
                        source, target = attributes["source"], attributes["target"]
                        if source in clusters:
                            ends.add(source)
                        if target in clusters:
                            ends.add(target)
                        if groups:  # a world without transit hubs looks for none
                            hub = attributes.get("transit_hub")
                            if hub in groups:
                                # Every spoke's entry for the hub holds the other spokes' networks.
                                ends.update(groups[hub])
                subjects.update(ends)
                touched.update(ends)
                waiting.append((change.address, ends))

        # Preshared keys are on disk before any config that holds them.
        wanted_psks = _local_psk_peerings(world, transit)
        psks = self._preshared_keys(request, wanted_psks, clusters, touched, failed)

        # A peer whose file comes out the same is neither rewritten nor reloaded. The new keys
        # are put in place, durably, after the configs are staged and before any is.
        failed_before = dict(failed)
        with atomic.kept_folders():  # peers' keys and files, read to see whether theirs change
            rewritten = self._write_configs(sorted(touched - live - external), subjects, clusters, world, peering, private_keys, failed, seen, psks, new_keys)
        if rewritten is None:
            # Some key could not be written: its cluster fails, and its peers, which would hold
            # its public key, have no key of it; the configs are made again without it, none of
            # the first ones having been put in place.
            failed.clear()
            failed.update(failed_before)
            failed.update(new_keys.failures)
            for name in new_keys.failures:
                private_keys.pop(name, None)
                new_public.pop(name, None)
            settle()
            seen = {_TRANSIT: transit}
            with atomic.kept_folders():
                rewritten = self._write_configs(sorted(touched - live - external), subjects, clusters, world, peering, private_keys, failed, seen, psks)
        # A cluster replaced onto another host, or renamed on its own, leaves nothing where it lived
        # before; first, so that the old interface frees its port for the new one.
        stale_paths += gateway_work.leave_old_homes(request, failed)
        if touched & live:
            gateway_work.push(request, sorted(touched & live), subjects, clusters, world, peering, failed, psks)
        for name, path in stale_paths:
            try:
                atomic.remove(path, self.within(path))
                # A moved cluster's folder goes with it, when nothing else lives there.
                atomic.remove_empty_dir(path.parent, self.within(path))
            except (OSError, UnsafePathError) as exc:
                failed.setdefault(name, f"removing {self.display(path)}: {self.reason(exc, path)}")
        for path in stale_keys:
            try:
                atomic.remove(path, self.within(path))
            except (OSError, UnsafePathError):
                pass  # a key of a name no longer in use: left where it is, named by the next plan
        # Once no config written here holds them: keys of peerings that ended or stopped wanting one.
        self._forget_preshared_keys(request, wanted_psks, clusters, failed)

        # Hooks run after every file is written, so a reload sees a consistent set of configs.
        # Clusters are finished in name order, so a result is ready once the last (by name) of
        # the clusters it waits on is finished: bucket each result under that cluster.
        order = sorted(touched)
        position = {name: i for i, name in enumerate(order)}
        buckets: dict[int, list[tuple[str, set[str]]]] = defaultdict(list)
        last = position.__getitem__
        for address, ends in waiting:
            buckets[max(map(last, ends), default=-1)].append((address, ends))

        def results(bucket: list[tuple[str, set[str]]]) -> Iterator[ResourceResult]:
            for address, ends in bucket:
                if failed:
                    yield self._result(address, ends, failed, clusters)
                elif address.startswith("cluster."):
                    yield ResourceResult(address, True, clusters[address[len("cluster."):]].computed)
                else:
                    # The common case, a link with both ends done: a full mesh gives 19,900 of them.
                    yield ResourceResult(address, True, {})

        yield from results(buckets.pop(-1, []))
        hooked = [name for name in order if name in rewritten and name not in failed] if self.settings.on_change else []
        with _HookRuns(self, [clusters[name] for name in hooked]) as runs:
            for i, name in enumerate(order):
                error = runs.outcome(name)
                if error:
                    failed[name] = error
                bucket = buckets.pop(i, None)
                if bucket:
                    yield from results(bucket)

    @staticmethod
    def _result(address: str, waits_on: set[str], failed: dict[str, str], clusters) -> ResourceResult:
        # Once each: both ends of a peering may fail for the same reason (its preshared key).
        errors = list(dict.fromkeys(failed[name] for name in sorted(waits_on) if name in failed)) if failed else []
        computed = {}
        if address.startswith("cluster."):
            # A failed hook still leaves a key and an address behind: record them either way.
            computed = clusters[address.split(".", 1)[1]].computed
        if errors:
            return ResourceResult.failed(address, *errors, computed=computed)
        return ResourceResult(address, ok=True, computed=computed)

    def _keys_for(self, request: ApplyRequest, failed: dict[str, str], stale_keys: list[Path], new_public: dict[str, str]) -> tuple[dict[str, str], _NewKeys]:
        """The private key of every cluster this apply creates, updates or replaces, and the
        new ones' files, being staged (`_NewKeys.commit` puts them in place).

        An existing key file is reused (a retry after a crash never changes keys); new keys are
        written together, before any config that holds them. A moved cluster's key file follows
        it to the new name. A key file that is not the key the state records is never taken.
        `new_public` receives the public key of each key made now.
        """
        try:
            atomic.remove_leftovers(self.paths.keys, within=self.within(self.paths.keys))
        except (OSError, UnsafePathError):
            pass  # each key read or written below names the problem, for the clusters it stops
        private_keys: dict[str, str] = {}
        new: dict[str, str] = {}
        try:
            # No key folder (a first apply): no key file to look for, cluster by cluster.
            with atomic.folder(self.paths.keys, self.within(self.paths.keys)):
                any_key_files = True
        except FileNotFoundError:
            any_key_files = False
        except (OSError, UnsafePathError):
            any_key_files = True  # each key read below names the problem, for the clusters it stops
        for change in request.changes:
            if change.action == "delete" or change.after is None or change.after.type != "cluster":
                continue
            if gateways.is_gateway(change.after):
                continue  # its key is born on the gateway: _GatewayWork.keys
            if is_external(change.after):
                continue  # its key lives elsewhere: skyplan holds only the public key
            name = change.after.name
            before = change.before
            if before is not None and before.name != name:
                if change.action == "replace":
                    stale_keys.append(self.key_path(before.name))
                else:
                    error = self._move_key(before.name, name)
                    if error:
                        failed[name] = error
                        continue
            try:
                path = self.key_path(name)
                # A create finds a key file when an interrupted create or `state rm` left one (it
                # is reused), or when someone planted it: only a private file is taken.
                existing = (
                    None
                    if change.action == "replace" or not any_key_files
                    else keys.read(path, self.within(path), adopting=change.action == "create")
                )
            except (keys.KeyFileError, UnsafePathError) as exc:
                failed[name] = f"key for cluster '{name}': {exc}"
                continue
            if existing is not None and change.action == "update":
                error = self._key_mismatch(name, existing, before.computed.get("public_key") if before else None)
                if error:
                    failed[name] = error
                    continue
            if existing is not None:
                private_keys[name] = existing  # also a key left by an interrupted create: reused
            elif change.action in ("create", "replace"):
                new[name], new_public[name] = keys.generate_pair()
            else:
                # Only a plan may replace a key, and it says so (-/+): never an update, silently.
                failed[name] = (
                    f"key file {self.display(self.key_path(name))} is missing; run plan, which replaces the key"
                )
        if new:
            within = self.within(self.paths.keys)
            try:
                # The data folder too: one made 0755 by an older skyplan is tightened.
                atomic.ensure_dir(self.paths.data, 0o700, within)
                atomic.ensure_dir(self.paths.keys, 0o700, within)
            except (OSError, UnsafePathError) as exc:
                for name in new:
                    failed[name] = f"key for cluster '{name}': {self.reason(exc)}"
                return private_keys, _NewKeys(self)
            # Staged here, by this thread, and put in place before any config that holds them.
            # A thread of their own cost more than it saved: each of its system calls waited
            # for the interpreter lock while the configs rendered (a 10k apply waited 0.2-0.3 s
            # for its 1,000 keys, which take 25 ms to write inline).
            batch = atomic.Batch(within, workers=0)
            for name, private in new.items():
                batch.add(self.key_path(name), (private + "\n").encode("ascii"), 0o600)
            private_keys.update(new)
            return private_keys, _NewKeys(self, batch, list(new))
        return private_keys, _NewKeys(self)

    def _preshared_keys(self, request: ApplyRequest, wanted: set[frozenset], clusters, touched: set[str], failed: dict[str, str]) -> dict[frozenset, str]:
        """The preshared key of every peering in the local store that a file of this apply holds.

        A key file is reused (a retry after a crash never changes keys) and follows its clusters'
        renames; a peering that has none yet, and one a link of which is replaced (rotation), gets
        a new one, written before any config that holds it.
        """
        needed = sorted((sorted(peering) for peering in wanted if not peering.isdisjoint(touched)))
        if not needed:
            return {}
        folder, within = self.paths.keys, self.within(self.paths.keys)
        renamed = {
            change.after.name: change.before.name
            for change in request.changes
            if change.before is not None and change.after is not None and change.after.type == "cluster" and change.before.name != change.after.name
        }
        rotated = {
            frozenset(change.after.ends)
            for change in request.changes
            if change.action == "replace" and change.after is not None and change.after.type == "link"
        }
        found: dict[frozenset, str] = {}
        new: dict[frozenset, str] = {}

        def fail(a: str, b: str, reason: str) -> None:
            for end in (a, b):
                if end in clusters:
                    failed.setdefault(end, reason)

        for a, b in needed:
            peering = psk.pair(a, b)
            try:
                if a in renamed or b in renamed:
                    psk.rename(folder, within, psk.pair(renamed.get(a, a), renamed.get(b, b)), peering)
                value = None if peering in rotated else psk.read(psk.path(folder, peering), within)
            except (OSError, psk.PresharedKeyError, UnsafePathError) as exc:
                fail(a, b, f"preshared key of clusters '{a}' and '{b}': {self.reason(exc)}")
                continue
            if value is None:
                new[peering] = psk.generate()
            else:
                found[peering] = value
        if new:
            try:
                errors = psk.write(folder, within, new)
            except (OSError, UnsafePathError) as exc:
                errors = dict.fromkeys(new, exc)
            for peering, value in new.items():
                if peering in errors:
                    a, b = sorted(peering)
                    fail(a, b, f"preshared key of clusters '{a}' and '{b}': {self.reason(errors[peering])}")
                else:
                    found[peering] = value
        return found

    def _forget_preshared_keys(self, request: ApplyRequest, wanted: set[frozenset], clusters, failed: dict[str, str]) -> None:
        """Remove the stored key of each peering this apply ended, or that stopped wanting one or
        stopped living here (both ends now gateways or external)."""
        renamed = {}  # before name -> after name
        replaced = []
        candidates: set[frozenset] = set()
        for change in request.changes:
            before, after = change.before, change.after
            if before is None:
                continue
            if before.type == "link":
                candidates.add(frozenset(before.ends))
            elif after is not None:
                if before.name != after.name:
                    renamed[before.name] = after.name
                if change.action == "replace":
                    replaced.append(before.name)
        if replaced:  # a cluster moved onto a gateway, or off to be managed elsewhere
            before_peering = self._peering(_world_before(request))
            candidates.update(frozenset((name, peer)) for name in replaced for peer in before_peering.get(name, {}))
        folder, within = self.paths.keys, self.within(self.paths.keys)
        for peering in candidates:
            now = frozenset(renamed.get(name, name) for name in peering)
            if now in wanted:
                continue
            for gone in {peering, now}:
                for name, exc in psk.remove(folder, within, [gone]).items():
                    for end in sorted(now):
                        if end in clusters:
                            failed.setdefault(end, f"removing preshared key file {psk.file_name(name)}: {self.reason(exc)}")

    def _move_key(self, old: str, new: str) -> str | None:
        """Rename cluster `old`'s key file to `new`'s; say why not, if it cannot be done.

        Done again after an interruption, it finds the key already moved and does nothing.
        """
        source, target = self.key_path(old), self.key_path(new)
        within = self.within(source)
        try:
            here, there = keys.read(source, within), keys.read(target, within)
            if here is None:
                return None  # moved already, or there was none: then the plan replaces the key
            if there is not None and there != here:
                return (
                    f"cannot move key file {self.display(source)} to {self.display(target)}: "
                    "that file exists and holds another key"
                )
            if there is None:
                atomic.rename(source, target, within)  # one folder: the key is under one name or the other
            else:
                atomic.remove(source, within)
        except (OSError, keys.KeyFileError, UnsafePathError) as exc:
            return f"moving the key of cluster '{old}' to '{new}': {exc}"
        return None

    def _key_mismatch(self, name: str, private: str, recorded_public: str | None) -> str | None:
        public = keys.public_key(private)
        if recorded_public is None or public == recorded_public:
            return None
        return (
            f"key file {self.display(self.key_path(name))} holds public key {public}, but the state records "
            f"{recorded_public}; it is not used. Run plan, which explains"
        )

    def _write_configs(self, names, subjects, clusters, world, peering, private_keys, failed, seen=None, psks=None, new_keys=None) -> set[str] | None:
        """Render and write the files of `names`; return the clusters whose file was written.

        Subjects of a change are always written (a retry must reload them); other clusters only
        when their file would change. `new_keys` are put in place once every file is staged and
        before any is; when one of them fails, no file is put in place and None is returned.
        """
        batches: dict[Path, atomic.Batch] = {}  # by the folder they are reached from
        owners: dict[Path, str] = {}
        seen = {} if seen is None else seen
        sections = seen.setdefault(_SECTIONS, {})  # peers' [Peer] sections, the same in every file
        # Clusters without a key yet (one that could not be made): found once, not per peer of
        # every file (a full mesh looks at 39,800 peers).
        keyless = {name for name, view in clusters.items() if "public_key" not in view.computed}
        try:
            for name in names:
                if name in failed:
                    continue
                missing = [p for p in peering.get(name, {}) if p in keyless] if keyless else None
                if missing:
                    failed[name] = f"peer cluster '{missing[0]}' has no key yet"
                    continue
                try:
                    private = private_keys.get(name)
                    if private is None:
                        private = keys.read(self.key_path(name), self.within(self.key_path(name)))
                        if private is None:
                            raise keys.KeyFileError(
                                f"key file {self.display(self.key_path(name))} is missing; run plan, which replaces the key"
                            )
                        # A peer's file written with a key its peers do not hold would break every tunnel.
                        mismatch = self._key_mismatch(name, private, clusters[name].computed.get("public_key"))
                        if mismatch:
                            raise keys.KeyFileError(mismatch)
                    text = conf.render(self._cluster_conf(clusters[name], world, peering, seen, psks), private, sections)
                    path = self.config_path(clusters[name])
                    within = self.within(path)
                    if name not in subjects and _current_text(path, within) == text:
                        continue
                except (OSError, UnsafePathError) as exc:
                    failed[name] = f"writing {self.display(path)}: {self.reason(exc, path)}"
                    continue
                except (keys.KeyFileError, conf.UnsafeConfigError) as exc:
                    failed[name] = str(exc)
                    continue
                batch = batches.get(within)
                if batch is None:
                    # Staged as it is added, by this thread, as the keys are (see _keys_for).
                    batch = batches[within] = atomic.Batch(within, workers=0)
                # Its folder is 0700 like every folder on the way that skyplan makes: the file
                # holds the private key.
                batch.add(path, text.encode("utf-8"), 0o600, folder_mode=0o700)
                owners[path] = name
            synced = frozenset()
            if new_keys is not None:
                for batch in batches.values():
                    batch.finish_staging()
                if new_keys.commit():
                    return None  # the staged files are removed as their batches close
                # The sync that made the keys' names durable came after every config was staged:
                # their data is durable too, where it is the same file system.
                synced = new_keys.synced
            for batch in batches.values():
                for path, exc in batch.commit(synced).items():
                    failed[owners[path]] = f"writing {self.display(path)}: {self.reason(exc, path)}"
                    del owners[path]
        finally:
            for batch in batches.values():
                batch.close()
        return set(owners.values())

    def _remove_cluster(self, cluster: ResourceView) -> str | None:
        path, key_path = self.config_path(cluster), self.key_path(cluster.name)
        try:
            atomic.remove(path, self.within(path))
            atomic.remove_empty_dir(path.parent, self.within(path))  # not empty: something else lives there
            atomic.remove(key_path, self.within(key_path))
        except (OSError, UnsafePathError) as exc:
            return f"removing files of cluster '{cluster.name}': {self.reason(exc)}"
        return None

    def _run_hook(self, cluster: ResourceView) -> str | None:
        context = {
            "cluster": cluster.name,
            "interface": cluster.attributes["interface"],
            "config_path": str(self.config_path(cluster)),
            "address": cluster.computed["address"],
        }
        try:
            argv = hooks.render_argv(self.settings.on_change or [], context)
        except ValueError as exc:
            return f"on_change for cluster '{cluster.name}': {exc}"
        ok, _, reason = hooks.run(argv, timeout=self.settings.hook_timeout)
        return None if ok else f"on_change for cluster '{cluster.name}' failed: {reason}"

    # -- status --------------------------------------------------------------------------------

    def status(self, request: StatusRequest) -> StatusResponse:
        from skyplan_wireguard.status import observe

        return observe(self, request)


class _NewKeys:
    """The key files of the keys one apply made, staged in the background while its configs
    render; `commit` puts them in place, durably, before any config that holds them is."""

    def __init__(self, provider: WireGuardProvider, batch: atomic.Batch | None = None, names: list[str] = ()):
        self._provider = provider
        self._batch = batch
        self._names = names
        self.failures: dict[str, str] = {}  # cluster name -> why its key could not be written
        self.synced: frozenset[int] = frozenset()  # file systems made durable after the keys' renames

    def commit(self) -> dict[str, str]:
        """Put every staged key in place; the clusters whose key could not be, and why."""
        if self._batch is None:
            return self.failures
        try:
            errors = self._batch.commit()
            self.synced = self._batch.synced
        finally:
            self.close()
        p = self._provider
        for name in self._names:
            path = p.key_path(name)
            if path in errors:
                self.failures[name] = f"key for cluster '{name}': {p.reason(errors[path], path)}"
        return self.failures

    def close(self) -> None:
        """Without a commit: the staged files are removed, none put in place."""
        if self._batch is not None:
            batch, self._batch = self._batch, None
            batch.close()


class _HookRuns:
    """The on_change hooks of one apply, `hooks.AT_ONCE` at a time, all started at once; each
    cluster's outcome is waited for in the order results are given."""

    def __init__(self, provider: WireGuardProvider, views: list[ResourceView]):
        self._pool = None
        self._futures = {}
        if views:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=min(hooks.AT_ONCE, len(views)))
            self._futures = {view.name: self._pool.submit(provider._run_hook, view) for view in views}

    def outcome(self, name: str) -> str | None:
        """Why the hook of cluster `name` failed; None if it succeeded or had none to run."""
        future = self._futures.get(name)
        return None if future is None else future.result()

    def __enter__(self) -> _HookRuns:
        return self

    def __exit__(self, kind, *exc) -> None:
        if self._pool is None:
            return
        # An apply stopped early (Ctrl-C) starts no hook it has not started yet, and ends those
        # still running rather than wait for them.
        for future in self._futures.values():
            future.cancel()
        if kind is not None:
            from concurrent.futures import wait

            # Again until every hook has ended: one whose thread was between starting it and
            # registering it when Ctrl-C came (a busy machine) is ended on the next pass.
            pending = [future for future in self._futures.values() if not future.done()]
            while pending:
                hooks.kill_running()
                pending = list(wait(pending, timeout=0.1).not_done)
        self._pool.shutdown(wait=True, cancel_futures=True)


class _GatewayWork:
    """The gateway side of one apply: the provider's shared SSH connections (those its refresh
    opened, and any more on first use), ended with the apply, and a refused host key that stops
    every gateway operation after it."""

    def __init__(self, provider: WireGuardProvider):
        self.provider = provider
        self.refused: list = []

    @property
    def conns(self):
        return self.provider.gateway_connections()

    def close(self) -> None:
        self.provider.close()

    def _run(self, fn, *args) -> gateways.Work:
        p = self.provider
        return fn(self.conns, p.settings, p.paths.root, *args, refused=self.refused)

    def teardown(self, views: list[ResourceView]) -> gateways.Work:
        return self._run(gateways.teardown_all, views)

    def reach(self, views: list[ResourceView]) -> dict[str, str]:
        """Connect to each of `views`' gateways first; why each that could not be reached failed.
        A refused host key among them also stops every later gateway operation (`refused`)."""
        if not views:
            return {}
        return {name: str(error) for name, error in self._run(gateways.reach_all, views).errors.items()}

    def keys(self, request: ApplyRequest, failed: dict[str, str]) -> dict[str, str]:
        """The public key of every gateway cluster this apply creates or replaces, its private key
        made on the gateway when it has none (or still holds the key being replaced)."""
        wanted = {}
        for change in request.changes:
            after = change.after
            if after is None or after.type != "cluster" or not gateways.is_gateway(after) or after.name in failed:
                continue
            if change.action == "create":
                wanted[after.name] = (after, None)
            elif change.action == "replace":
                wanted[after.name] = (after, change.before.computed.get("public_key") if change.before else None)
            elif _interface_renamed(change):
                # The key file is named after the interface: the new name gets a key of its own
                # (peers are updated with it), and the old interface goes (leave_old_homes).
                wanted[after.name] = (after, None)
        if not wanted:
            return {}
        work = self._run(gateways.ensure_keys, wanted)
        for name, error in work.errors.items():
            failed[name] = str(error)
        return gateways.unique_keys(work.values, request.world, failed)

    def push(self, request, names, subjects, clusters, world, peering, failed, local_psks=None) -> None:
        """Write and reload the config of each gateway in `names` whose file changes: every subject
        of a change, a peer only when its file differs from what the world before held, and both
        ends of a peering whose preshared key is new (`preshared_keys`). `local_psks`: the keys of
        the local store (by peering) that this apply's local configs hold."""
        p = self.provider
        before_world = _world_before(request)
        before_peering = p._peering(before_world)
        psks, fresh = self.preshared_keys(request, names, clusters, before_world, before_peering, failed, local_psks or {})
        renewed = {end for peering in fresh for end in peering}
        files = {}
        seen: dict = {}
        for name in names:
            if name in failed:
                continue
            # A peer that has no key yet (its gateway could not be reached to make one) is left
            # out for now: the changes that need it fail through it, the others go ahead.
            peers = peering.get(name, {})
            keyed = {peer: links for peer, links in peers.items() if "public_key" in clusters[peer].computed}
            cluster_conf = p._cluster_conf(clusters[name], world, {name: keyed} if keyed != peers else peering, seen, psks=psks)
            try:
                # Refuses a line skyplan does not write, and a preshared key not at hand, before ssh.
                conf.render(cluster_conf, None)
            except conf.UnsafeConfigError as exc:
                failed[name] = str(exc)
                continue
            if name not in subjects and name not in renewed:
                old = before_world.get(f"cluster.{name}")
                try:
                    # The same keys for both: a peering's key that stays is no change of the file.
                    was = p._cluster_conf(old, before_world, before_peering, psks=psks) if old is not None else None
                except KeyError:
                    was = None  # a peer of before had no key yet: not the same file
                if was == cluster_conf and old is not None and old.attributes == clusters[name].attributes:
                    continue
            files[name] = (clusters[name], cluster_conf)
        if files:
            work = self._run(gateways.push_all, files)
            for name, error in work.errors.items():
                failed[name] = str(error)

    def preshared_keys(self, request, names, clusters, before_world, before_peering, failed, local_psks) -> tuple[dict, set]:
        """The preshared keys of the peerings of the gateways `names` (by frozenset of the two
        names), and which of them are new here.

        A peering with a local end has its key in the local store: the one its local config got
        (`local_psks`), so that both ends hold the same. One between gateways (or a gateway and
        an external peer) has it on the gateways only: generated in memory when the peering is
        new, is rotated (a link of it is replaced), newly wants one, or it is missing or not the
        same on its two ends; otherwise the one the ends hold is kept, read from them (also when
        an end got a new key). Only the gateways in `names` are read: where the other end is not
        pushed now, the pushed end keeps the key it holds, which is the other end's too.
        """
        live_names = set(names)
        wanted = [pair for pair in _psk_peerings(request.world) if pair & live_names and all(end in clusters for end in pair)]
        if not wanted:
            return {}, set()
        values: dict[frozenset, str] = {}
        fresh: set[frozenset] = set()
        kept = []
        was_wanted = _psk_peerings(before_world)
        rotated = {
            frozenset(change.after.ends)
            for change in request.changes
            if change.action == "replace" and change.after is not None and change.after.type == "link"
        }
        for pair in sorted(wanted, key=sorted):
            a, b = sorted(pair)
            if is_local(clusters[a]) or is_local(clusters[b]):
                if pair in local_psks:
                    values[pair] = local_psks[pair]
                else:  # the local store could not give it: the local end's change says why
                    local = a if is_local(clusters[a]) else b
                    for end in pair & live_names:
                        failed.setdefault(end, f"the preshared key of its peering with '{local}' is not at hand: that cluster failed")
            elif b not in before_peering.get(a, {}) or pair in rotated or pair not in was_wanted:
                fresh.add(pair)
            else:
                kept.append(pair)
        # Only the gateways pushed now are asked (others are not reached at all): an end that is
        # not pushed holds what the last apply gave both ends, or refresh shows it as drift.
        readable = sorted({end for pair in kept for end in pair & live_names if gateways.is_gateway(clusters[end]) and end not in failed})
        held_by: dict[str, dict[str, str]] = {}
        if readable:
            work = self._run(gateways.preshared_keys_all, [clusters[name] for name in readable])
            held_by = work.values
            for name, error in work.errors.items():
                failed.setdefault(name, str(error))
        for pair in kept:
            held = {}
            for end in sorted(pair):
                if end in held_by:
                    (other,) = pair - {end}
                    # Under the other end's key, or the one it had: a peer's new key (a replaced
                    # cluster, an external peer's rotation) is no new peering and keeps its key.
                    was = before_world.get(f"cluster.{other}")
                    found_under = [_public_key(clusters[other]), _public_key(was) if was is not None else None]
                    held[end] = next((held_by[end][k] for k in found_under if k and k in held_by[end]), None)
            values_held = set(held.values())
            if len(values_held) == 1 and None not in values_held:
                # The ends agree, or an end that is not pushed now keeps the key the pushed one has.
                values[pair] = values_held.pop()
            else:
                fresh.add(pair)
        for pair in fresh:
            values[pair] = psk.generate()
        return values, fresh

    def leave_old_homes(self, request: ApplyRequest, failed: dict[str, str]) -> list[tuple[str, Path]]:
        """Clusters replaced onto another host: the old gateway's interface goes down and its files
        go; a local cluster's old config is returned for removal (its key file too, here)."""
        p = self.provider
        old_gateways = []
        local_paths = []
        for change in request.changes:
            before, after = change.before, change.after
            if before is None or after is None or after.type != "cluster" or after.name in failed:
                continue
            if _interface_renamed(change):
                old_gateways.append(before)
                continue
            if change.action != "replace" or before.attributes.get("gateway") == after.attributes.get("gateway"):
                continue
            if gateways.is_gateway(before):
                old_gateways.append(before)
            else:
                local_paths.append((after.name, p.config_path(before)))
                try:
                    atomic.remove(p.key_path(before.name), p.within(p.key_path(before.name)))
                except (OSError, UnsafePathError) as exc:
                    failed.setdefault(after.name, f"removing the old key file of cluster '{after.name}': {p.reason(exc)}")
        if old_gateways:
            work = self._run(gateways.teardown_all, old_gateways)
            for name, error in work.errors.items():
                failed.setdefault(name, f"taking down the interface it had before: {error}")
        return local_paths


def _psk_peerings(world: dict[str, ResourceView]) -> set[frozenset]:
    """The peerings that want a preshared key: a link joining the pair has `preshared_key`."""
    return {frozenset(view.ends) for view in world.values() if view.type == "link" and view.attributes.get("preshared_key")}


def _public_key(cluster: ResourceView) -> str | None:
    """The public key that `cluster`'s peers hold: an external peer's argument, or the computed one."""
    return cluster.attributes.get("public_key") or cluster.computed.get("public_key")


def _interface_renamed(change) -> bool:
    """A gateway cluster that stays on its gateway under another interface name."""
    before, after = change.before, change.after
    return (
        change.action == "update"
        and before is not None
        and after is not None
        and gateways.is_gateway(after)
        and before.attributes.get("gateway") == after.attributes.get("gateway")
        and before.attributes["interface"] != after.attributes["interface"]
    )


def _gateways_in_play(request: ApplyRequest) -> list[ResourceView]:
    """The gateway clusters an apply may change: those its changes name, as they are after and
    before (a deleted cluster, an old home), the ends of its links, the peers of its clusters,
    whose files hold their keys and endpoints, and the members of a transit group one of them is
    in (they route each other's networks). Others are not reached at all."""
    after = {view.name: view for view in request.world.values() if view.type == "cluster"}
    before_world = _world_before(request)
    peering = WireGuardProvider._peering(request.world)
    before_peering = WireGuardProvider._peering(before_world)
    # A transit hub's spokes route each other's networks: a change of one changes the others' files.
    transit, before_transit = _Transit.of(request.world), _Transit.of(before_world)
    names: set[str] = set()
    olds: list[ResourceView] = []
    for change in request.changes:
        for side in (change.before, change.after):
            if side is None:
                continue
            if side.type == "link":
                names.update(side.ends)
                hub = side.attributes.get("transit_hub")
                if hub is not None:
                    names.update([hub, *transit.groups.get(hub, ()), *before_transit.groups.get(hub, ())])
                continue
            names.update([side.name, *peering.get(side.name, {}), *before_peering.get(side.name, {})])
            names.update(transit.related(side.name) | before_transit.related(side.name))
            if side is change.before and gateways.is_gateway(side):
                now = after.get(side.name)
                if now is None or now.attributes.get("gateway") != side.attributes.get("gateway"):
                    olds.append(side)  # deleted, or moved to another host: its old one is changed too
    views = [after[name] for name in sorted(names) if name in after and gateways.is_gateway(after[name])]
    return views + olds


def _world_before(request: ApplyRequest) -> dict[str, ResourceView]:
    """Every resource as it was before this apply (as far as the changes tell)."""
    world = dict(request.world)
    for change in request.changes:
        if change.before is not None:
            world[change.address] = change.before
        else:
            world.pop(change.address, None)
    return world


# Paths are asked for several times per cluster (read, write, messages) and pathlib builds each
# anew: remembered, for the 10,000 clusters of a large fleet.
@lru_cache(maxsize=1 << 16)
def _config_path(root: Path, output_dir: str, name: str, interface: str) -> Path:
    return _output_base(root, output_dir).joinpath(name, f"{interface}.conf")  # one Path made, not two


@lru_cache(maxsize=1 << 16)
def _key_path(data: Path, name: str) -> Path:
    return data.joinpath("keys", f"{name}.key")


@lru_cache(maxsize=64)
def _output_base(root: Path, output_dir: str) -> Path:
    # Normalised, as atomic.py reaches files: `a/../b` is `b`, whatever `a` is.
    return Path(os.path.normpath(root / output_dir))


def _current_text(path: Path, within: Path) -> str | None:
    try:
        raw = atomic.read_bytes(path, within)
        return None if raw is None else raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _fingerprint(psks: Mapping[frozenset, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    """One digest of everything a local refresh compares the world with: the stored preshared
    keys and every cluster's key and config file. Secrets go in, only a SHA-256 comes out, kept
    sealed in the workspace's 0700 cache (skyplan/state/refreshed.py)."""
    import hashlib

    digest = hashlib.sha256(b"wireguard-refresh-1")

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big"))  # length-framed: no two inputs run together
        digest.update(data)

    for pair, value in sorted(psks.items(), key=lambda item: sorted(item[0])):
        part("\0".join(sorted(pair)).encode())
        part(value.encode())
    for name, (private, raw) in files.items():
        part(name.encode())
        part(private.encode())
        part(raw)
    return digest.hexdigest().encode("ascii")


def _local_psk_peerings(world: dict[str, ResourceView], transit: _Transit) -> set[frozenset]:
    """The peerings that want a preshared key kept in the local store: those with a local end.
    (Between gateways, or a gateway and an external peer, the key lives only on the gateways.)"""
    return {pair for pair in transit.preshared if any(is_local(world[f"cluster.{end}"]) for end in pair)}


def _pins(clusters) -> dict[str, str]:
    """Pinned overlay addresses, by cluster name."""
    return {view.name: view.attributes["address"] for view in clusters if "address" in view.attributes}


def is_external(view: ResourceView) -> bool:
    """A cluster managed elsewhere, known by its public key: skyplan writes and reads nothing of it."""
    return "public_key" in view.attributes


def is_local(view: ResourceView) -> bool:
    """A cluster whose key and config are files of this workspace."""
    return not is_external(view) and not gateways.is_gateway(view)


def _identity(name: str, world: dict[str, ResourceView], seen: dict) -> tuple[str, str | None, tuple[str, ...]]:
    """How cluster `name` looks in its peers' files: public key, endpoint (None behind NAT) and
    the networks it is the way to (its overlay address and subnets); memoised in `seen`."""
    identity = seen.get(name)
    if identity is None:
        peer = world[f"cluster.{name}"]
        allowed = (conf.host_prefix(peer.computed["address"]), *peer.attributes["subnets"])
        # An external peer's key is its argument; a KeyError is a peer that has no key yet.
        public = peer.attributes["public_key"] if "public_key" in peer.attributes else peer.computed["public_key"]
        identity = seen[name] = (public, peer.attributes.get("endpoint"), allowed)
    return identity


def _networks(name: str, world: dict[str, ResourceView]) -> tuple[str, ...]:
    """Cluster `name`'s overlay address and subnets: what a transit hub is the way to."""
    view = world[f"cluster.{name}"]
    return (conf.host_prefix(view.computed["address"]), *view.attributes["subnets"])


_TRANSIT = ("transit groups",)  # the key of the world's _Transit in `seen`: never a cluster name
_SECTIONS = ("peer sections",)  # the key of conf.render's memo in `seen`: never a cluster name


class _Transit:
    """What a world's links say beyond who peers with whom: each transit hub's group (the clusters
    its transit links join it to), the hubs each cluster is a member with, the pairs joined
    directly (a direct peering wins over the way through a hub), and the peerings that want a
    preshared key (any of their links does)."""

    __slots__ = ("direct", "groups", "hubs_of", "preshared")

    def __init__(self, groups: dict[str, set[str]], direct: set[frozenset], preshared: set[frozenset]):
        self.groups = groups
        self.direct = direct
        self.preshared = preshared
        self.hubs_of: dict[str, set[str]] = defaultdict(set)
        for hub, members in groups.items():
            for member in members:
                self.hubs_of[member].add(hub)

    @classmethod
    def of(cls, world: dict[str, ResourceView]) -> _Transit:
        groups: dict[str, set[str]] = defaultdict(set)
        preshared: set[frozenset] = set()
        links = [view for view in world.values() if view.type == "link"]
        for view in links:
            attributes = view.attributes
            if "transit_hub" in attributes or "preshared_key" in attributes:  # most links have neither
                source, target = view.ends
                hub = attributes.get("transit_hub")
                if hub is not None:
                    groups[hub].add(target if source == hub else source)
                if attributes.get("preshared_key"):
                    preshared.add(frozenset((source, target)))
        # Only a world with transit needs the pairs: the common one pays a single scan.
        direct = {frozenset(view.ends) for view in links} if groups else set()
        return cls(dict(groups), direct, preshared)

    def routes(self, cluster: str, peer: str, world: dict[str, ResourceView], seen: dict) -> tuple[str, ...]:
        """What `cluster` reaches through `peer` beyond the peer itself: when the peer is a transit
        hub of `cluster`, the other members' addresses and subnets that `cluster` has no direct
        peering with."""
        members = self.groups.get(peer)
        if not members or cluster not in members:
            return ()
        via: list[str] = []
        for member in sorted(members):
            if member != cluster and frozenset((cluster, member)) not in self.direct:
                networks = seen.get((_TRANSIT, member))
                if networks is None:
                    networks = seen[(_TRANSIT, member)] = _networks(member, world)
                via.extend(networks)
        return tuple(via)

    def related(self, name: str) -> set[str]:
        """Every cluster whose file holds `name`'s networks through a hub, and those hubs."""
        found: set[str] = set()
        for hub in self.hubs_of.get(name, ()):
            found.add(hub)
            found.update(self.groups[hub])
        return found

