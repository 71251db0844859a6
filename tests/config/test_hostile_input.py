"""Hostile input: validate and plan refuse it cleanly; whatever validates applies to safe files.

Documents come two ways: a valid configuration mutated as data (values replaced by hostile or
plausible ones, characters spliced in, keys added and removed, entries added) and serialised to
YAML or JSON, with manifests and junk documents after it; and raw text or bytes. Each goes
through `skyplan validate` and `skyplan plan` in a fresh workspace. Whatever validates is also
applied: every generated wg-quick file is checked line by line by a checker written here,
independently of the renderer's own guard, and by `wg-quick strip`; a second plan finds nothing.

Hypothesis explores combinations; the catalogues of hostile values also run one by one, so that
each is tried on every run. Last, generated configs and key files are edited by hand: plan reads
them back, reports drift or one clean error, and apply puts them right.
"""

from __future__ import annotations

import base64
import copy
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# -- running skyplan ------------------------------------------------------------------------------

ENV = {"NO_COLOR": "1", "SKYPLAN_BACKEND": None, "SKYPLAN_CONFIG": None}
LOCATED = re.compile(r"(Error|Warning): links\.yaml:(\d+:\d+:)? \S")


def _skyplan(*args: str):
    from skyplan.cli.skyplan_cmd import main

    return CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_clean(result, command: str) -> None:
    """Exit 0 or 1; on 1 a located first line; never a traceback or an internal error."""
    shown = f"skyplan {command} exited {result.exit_code}:\n{result.output[:3000]}"
    assert result.exit_code in (0, 1), shown
    assert "Traceback" not in result.output, shown
    assert "unexpected internal error" not in result.output, shown
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert lines, shown
        assert LOCATED.match(lines[0]), shown
        assert all(LOCATED.match(line) for line in lines if line.startswith("Error:")), shown


def check_document(content: bytes) -> str:
    """The whole property: validate and plan behave; whatever validates applies to safe files.

    Returns what happened, for Hypothesis's statistics (--hypothesis-show-statistics).
    """
    with tempfile.TemporaryDirectory(prefix="skyplan-hostile-") as folder:
        root = Path(folder)
        (root / "links.yaml").write_bytes(content)
        previous = os.getcwd()
        os.chdir(root)
        try:
            validated = _skyplan("validate")
            _assert_clean(validated, "validate")
            assert _files(root) == {"links.yaml": len(content)}, "validate wrote files"

            planned = _skyplan("plan")
            _assert_clean(planned, "plan")
            assert planned.exit_code == validated.exit_code, f"validate and plan disagree:\n{planned.output[:3000]}"
            # Refused input leaves nothing. A valid workspace keeps its lock file (empty, see
            # CONTRACT 3) and the cache of its validated configuration.
            expected = {"links.yaml": len(content)}
            found = _files(root)
            if planned.exit_code == 0:
                expected[".skyplan/state.json.lock"] = 0
                found.pop(".skyplan/cache/config.json", None)
                found.pop(".skyplan/cache/settings.json", None)
            assert found == expected, "plan wrote files"

            expected_configs = _configs_to_expect(root) if validated.exit_code == 0 else None
            if expected_configs is not None:
                applied = _skyplan("apply", "--auto-approve")
                assert applied.exit_code == 0, f"a valid configuration failed to apply:\n{applied.output[:3000]}"
                assert sorted(root.rglob("*.conf")) == expected_configs
                for path in expected_configs:
                    check_generated_config(path)
                check_with_wg_quick(expected_configs)
                # Reading the files back finds them as applied: odd but valid values round-trip.
                again = _skyplan("plan", "--detailed-exitcode")
                assert again.exit_code == 0, f"changes right after apply:\n{again.output[:3000]}"
                return "valid, applied"
            return f"validate exit {validated.exit_code}"
        finally:
            os.chdir(previous)


def _configs_to_expect(root: Path) -> list[Path] | None:
    """The configs apply should write; None when applying would reach outside the test.

    Apply writes where output_dir says and runs on_change hooks: keep both inside the test.
    """
    from skyplan.config.loader import load_config

    loaded = load_config(root / "links.yaml", display="links.yaml")
    settings_ = loaded.settings
    output = (root / settings_.output_dir).resolve()
    if not (output == root.resolve() or root.resolve() in output.parents):
        return None
    if settings_.on_change is not None or settings_.status_command is not None:
        return None
    return sorted(output / cluster.name / f"{settings_.interface}.conf" for cluster in loaded.config.clusters)


# -- the independent checker of generated configs -------------------------------------------------

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_NAMES = _NAME + r"(?:, " + _NAME + r")*"
_LINE_FORMS = {
    "header": re.compile(r"# Generated by skyplan for cluster (" + _NAME + r")\. Edits are overwritten by the next apply\."),
    "interface": re.compile(r"\[Interface\]"),
    "peer": re.compile(r"\[Peer\]"),
    "peer_comment": re.compile(r"# Peer (" + _NAME + r"), links?: (" + _NAMES + r")"),
    "Address": re.compile(r"Address = ([0-9a-f:.]+/[0-9]{1,3})"),
    "ListenPort": re.compile(r"ListenPort = ([1-9][0-9]{0,4})"),
    "PrivateKey": re.compile(r"PrivateKey = ([A-Za-z0-9+/]{43}=)"),
    "MTU": re.compile(r"MTU = ([1-9][0-9]{2,4})"),
    "PublicKey": re.compile(r"PublicKey = ([A-Za-z0-9+/]{43}=)"),
    "Endpoint": re.compile(r"Endpoint = (\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):([0-9]{1,5})"),
    "AllowedIPs": re.compile(r"AllowedIPs = ([0-9A-Fa-f:.]+/[0-9]{1,3}(?:, [0-9A-Fa-f:.]+/[0-9]{1,3})*)"),
    "PersistentKeepalive": re.compile(r"PersistentKeepalive = ([1-9][0-9]{0,4})"),
    "blank": re.compile(r""),
}
_INTERFACE_KEYS = {"Address", "ListenPort", "PrivateKey", "MTU"}
_PEER_KEYS = {"PublicKey", "Endpoint", "AllowedIPs", "PersistentKeepalive"}
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _key(text: str) -> None:
    assert len(base64.b64decode(text, validate=True)) == 32


def _network(text: str) -> None:
    network = ipaddress.ip_network(text, strict=True)
    assert network.prefixlen == int(text.rsplit("/", 1)[1])


def _endpoint(host: str, port: str) -> None:
    assert 1 <= int(port) <= 65535
    if host.startswith("["):
        ipaddress.IPv6Address(host[1:-1])
    elif re.fullmatch(r"[0-9.]+", host):
        ipaddress.IPv4Address(host)
    else:
        name = host.removesuffix(".")
        assert len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.split(".")), host


def check_generated_config(path: Path) -> None:
    """Every line is one that skyplan means to write, in its place, with a strict value."""
    raw = path.read_bytes()
    text = raw.decode("ascii")  # anything beyond ASCII is already wrong
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    section = None
    seen: set[str] = set()
    lines = text[:-1].split("\n")
    for number, line in enumerate(lines, start=1):
        form, match = next(((f, m) for f, p in _LINE_FORMS.items() if (m := p.fullmatch(line))), (None, None))
        assert form is not None, f"{path}:{number}: not a line skyplan writes: {line!r}"
        where = f"{path}:{number}: {line!r}"
        if form == "header":
            assert number == 1 and match.group(1) == path.parent.name, where
        elif form == "blank":
            # The template leaves one blank line before each peer, nowhere else.
            assert number < len(lines) and lines[number].startswith("# Peer "), where
        elif form == "peer_comment":
            assert lines[number] == "[Peer]", where
        elif form in ("interface", "peer"):
            assert (form == "interface") == (section is None), where
            section = form
            seen = set()
        elif form in _INTERFACE_KEYS | _PEER_KEYS:
            assert section == ("interface" if form in _INTERFACE_KEYS else "peer"), where
            assert form not in seen, f"{where}: repeated"
            seen.add(form)
            value = match.group(1)
            if form in ("PrivateKey", "PublicKey"):
                _key(value)
            elif form == "Address":
                _network(value)
            elif form == "AllowedIPs":
                for item in value.split(", "):
                    _network(item)
            elif form == "Endpoint":
                _endpoint(match.group(1), match.group(2))
            elif form == "MTU":
                assert 576 <= int(value) <= 65535, where
            else:
                assert 1 <= int(value) <= 65535, where
    assert section is not None, f"{path}: no [Interface]"


def check_with_wg_quick(paths: list[Path]) -> None:
    """`wg-quick strip` accepts every file (run side by side: each is a bash start-up)."""
    running = [
        (path, subprocess.Popen(["wg-quick", "strip", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for path in paths
    ]
    for path, process in running:
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, f"wg-quick strip rejects {path}: {stderr.decode()}"


@pytest.fixture(scope="module", autouse=True)
def _wg_quick() -> None:
    if shutil.which("wg-quick") is None:
        pytest.fail("wg-quick not found: install wireguard-tools (.ci/setup does)", pytrace=False)


# -- hostile values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """YAML text put in place of a value as it is: tags, escapes, aliases, giant numbers."""

    text: str


RAW_VALUES = [
    '!!int "x"', '!!float "x"', '!!int "51820"', "!!str 51820", "!!float 1", '!!bool "yes"',
    "!!int 0x" + "f" * 4000, "9" * 5000, "-" + "9" * 4400, "1" + "0" * 400 + ".5", "0x" + "f" * 40,
    "0o777", "0b101", "1_000", "0777", "+1", "1e3", ".nan", ".inf", "-.inf", "yes", "no", "on", "Y",
    "~", "!!null ''", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [{a: 1}]", "!!pairs [{a: 1}, {a: 2}]",
    "!!timestamp 2001-12-14", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "!!timestamp x",
    "!foo bar", "!<tag:example.com,2000:x> y", "!!python/object:os.system ls", "!!python/name:os.system",
    "*undefined", "&dup a", '"\\ud800"', '"\\udfff x"', '"\\U0010FFFF"', '"\\x00"', '"\\0"', '"a\\nb"',
    '"\\e[31m"', '"\\N"', '"\\_"', '"\\L"', '"\\P"', '"\\t"', '"\\u202e"', "'single ''quoted'''",
    "|\n  literal\n  block", ">-\n  folded", "[[[[]]]]", "{a: {b: {c: {}}}}", "? complex\n: key",
    "{? [a, b]: c}", "{[a]: 1}", "{{a: 1}: 2}", "&s [*s]", "&m {x: *m}",
]

PIECES = [
    "\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "#", "[", "]", "=", " = ", "[Peer]",
    "\nPostUp = touch /tmp/pwned", "\n[Peer]\nPublicKey = x", " # comment", "\t", "\x00", "\x1b[31m",
    "\u202e", "\u200b", "\u200f", "\u2066", "\ufeff", "\ufffe", "%", "%eth0", "%25", "\\", "'", '"', ":", ": ",
    "- ", "{", "}", ",", ", ", "&", "*", "!", "|", ">", "@", "`", "$(id)", "..", "/", "é", "日本", "🙂",
    "\U0001d7d8", "\uff11", "٣", " ", "\u00a0", "\u3000",
]

# Values that are valid, or valid only on a first look, for each kind of field.
PLAUSIBLE = {
    "endpoint": [
        "192.0.2.1:1", "[::1]:65535", "[2001:db8::1]:51820", "a.b:80", "host.:80", "[::ffff:192.0.2.1]:5",
        "1.2.3.4:00080", "x:65536", "[fe80::1%eth0]:51820", "[fe80::1%25eth0]:5", "localhost:1", "1.2.3.4:0",
        "xn--bcher-kva.example:1", "a" * 63 + ".com:1", "a" * 64 + ".com:1", "1.2.3:80", "01.2.3.4:80",
        "[1:2:3:4:5:6:7:8]:1", "[::]:1", "0x7f.1:80", "1e3:80", "-a.b:80", "[]:1", ":1", "a:", "a:+1", "a: 1",
        "a:1 ", " a:1", "a..b:1", "[::1%]:1", "[1.2.3.4]:1", "1.2.3.4:1:2", "a:1\n", "A.B:1",
    ],
    "network": [
        "10.0.0.0/8", "fd00::/8", "FD00::/8", "fd00:0:0::/48", "10.0.0.0/255.0.0.0", "10.0.0.0/0.255.255.255",
        "fe80::%1/64", "fe80::%eth0/64", "10.1.0.0/016", "10.1.0.0/+16", "0.0.0.0/0", "::/0", "192.168.1.1/32",
        "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0", "::ffff:10.0.0.0/104", "1.2.3.4/32 ", " 1.2.3.4/32",
        "100.96.0.0/24", "100.96.0.0/31", "100.96.0.0/32", "fd00:5c::/120", "fd00:5c::/127", "fd00:5c::/128",
        "::ffff:0:0/96", "1.2.3.4/ 32", "1.2.3.4/32/32", "/8", "10/8",
    ],
    "name": [
        "a", "A" * 63, "A" * 64, "x.y_z-w", "1", "a..b", "a.", "_a", "a_", "us-west", "eu-central", "ap-south",
        "myLink", "sourceCluster",
    ],
    "interface": ["wg0", "=", "+", ".", "..", "a" * 15, "a" * 16, "wg 0", "wg/0", "-wg"],
    "folder": ["wireguard", "out/wg", "./x", "x y", "#x", "[x]", "a=b", ".", ".skyplan", "é", "a\\b"],
}
# The places a value of each kind goes, all at once: one document per value. Names go where they
# keep the document consistent (cluster 2's name is also link 1's target); a network goes into
# one subnet or the pool, since anywhere else too it would overlap itself.
_PLACES_FOR = {
    "endpoint": [[("clusters", 0, "endpoint"), ("clusters", 2, "endpoint")]],
    "network": [[("clusters", 1, "subnets", 1)], [("provider", "address_pool")]],
    "name": [[("clusters", 2, "name"), ("links", 1, "target"), ("links", 0, "name")]],
    "interface": [[("provider", "interface")]],
    "folder": [[("provider", "output_dir")]],
}
VALID_ALTERNATIVES = [value for values in PLAUSIBLE.values() for value in values]

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_pieces = st.sampled_from(PIECES)
_valid_alternatives = st.sampled_from(VALID_ALTERNATIVES)


@st.composite
def _spliced(draw) -> str:
    """A plausible value with hostile characters put somewhere inside it."""
    value = draw(_valid_alternatives)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(_pieces) + value[at:]
    return value


hostile_strings = st.one_of(
    _valid_alternatives,
    _spliced(),
    _text,
    st.lists(_pieces, min_size=1, max_size=4).map("".join),
    st.sampled_from([64, 254, 4096, 70_000]).map(lambda n: "a" * n),
    st.sampled_from([63, 300]).map(lambda n: "1." * n + "1:80"),
)
hostile_numbers = st.one_of(
    st.integers(-3, 70_000),
    st.sampled_from([0, -1, 575, 576, 65535, 65536, 2**31, 2**32, 2**63, 2**64, -(2**63), 10**30, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.0, 51820.0, 25.5, -0.0, 1e308]),
)
hostile_scalars = st.one_of(
    st.one_of(st.none(), st.booleans(), hostile_numbers),
    hostile_strings,
    hostile_strings,
    st.sampled_from(RAW_VALUES).map(Raw),
)
hostile_keys = st.one_of(
    hostile_strings, st.integers(-2, 2), st.none(), st.booleans(), st.sampled_from(["name", "<<", "kind", "version"])
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_keys, inner, max_size=3)),
    max_leaves=6,
)

# -- structured documents: a valid configuration, mutated ----------------------------------------

BASE = {
    "version": 1,
    "provider": {
        "name": "wireguard",
        "output_dir": "wireguard",
        "interface": "wgsky0",
        "address_pool": "100.96.0.0/16",
        "listen_port": 51820,
        "persistent_keepalive": 25,
        "mtu": 1420,
    },
    "backend": {"type": "local"},
    "clusters": [
        {"name": "us-west", "endpoint": "203.0.113.10:51820", "subnets": ["10.10.0.0/16"]},
        {
            "name": "eu-central",
            "endpoint": "[2001:db8::20]:51999",
            "subnets": ["10.20.0.0/16", "fd10:20::/64"],
            "listen_port": 51999,
        },
        {"name": "ap-south", "endpoint": "vpn.ap-south.example.net:51820", "subnets": ["10.30.0.0/16"]},
    ],
    "links": [
        {"name": "us-eu", "source": "us-west", "target": "eu-central"},
        {"name": "us-ap", "source": "us-west", "target": "ap-south"},
    ],
    "meshes": [],
}
LINK_MANIFEST = {
    "apiVersion": "skyshift.io/v1",
    "kind": "Link",
    "metadata": {"name": "eu-ap", "labels": {"team": "net"}},
    "spec": {"source_cluster": "eu-central", "target_cluster": "ap-south"},
}
CLUSTER_MANIFEST = {
    "kind": "Cluster",
    "metadata": {"name": "sa-east"},
    "spec": {"endpoint": "198.51.100.30:51820", "subnets": ["10.40.0.0/16"]},
}
MESH = {"name": "core", "clusters": ["us-west", "eu-central", "ap-south"], "topology": "hub", "hub": "us-west"}
JUNK_DOCUMENTS = [
    "just a string", "- a\n- b", "42", "null", "~", "", "kind: Link", "kind: [x]", "kind: Cluster\nspec: 1",
    "kind: Link\nmetadata: {name: x}\nspec: {source_cluster: us-west, target_cluster: us-west}",
    "version: 1", "{", "]", "&a [*a]", "!!binary aGVsbG8=", "kind: Secret", "kind: link",
    "kind: Link\nmetadata:\n  name: zz\nspec:\n  source_cluster: ap-south\n  target_cluster: nowhere\nstatus: {phase: ACTIVE}",
]


def _places(node, path=()):
    """Every (path, value) inside a document, the root included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, path + (index,))


def _parent(document, path):
    for part in path[:-1]:
        document = document[part]
    return document


# Which catalogue of plausible values fits a place, by the key that holds it.
_KIND_OF_KEY = {
    "name": "name", "source": "name", "target": "name", "hub": "name", "source_cluster": "name", "target_cluster": "name",
    "endpoint": "endpoint", "subnets": "network", "address_pool": "network", "interface": "interface", "output_dir": "folder",
}
plausible_numbers = st.sampled_from([1, 25, 576, 1280, 1420, 9000, 51820, 65535, 0, 575, 65536])


def _kind(path) -> str | None:
    keys = [part for part in path if isinstance(part, str)]
    if not keys or keys == ["provider", "name"]:
        return None
    if keys[-1] in ("listen_port", "persistent_keepalive", "mtu"):
        return "number"
    return _KIND_OF_KEY.get(keys[-1])


@st.composite
def plausible_for(draw, kind: str):
    if kind == "number":
        return draw(plausible_numbers)
    return draw(st.one_of(st.sampled_from(PLAUSIBLE[kind]), st.sampled_from(PLAUSIBLE[kind]).map(str.upper)))


@st.composite
def new_entry(draw, document):
    """A cluster or link entry that may well be valid: new names, plausible values."""
    clusters = document.get("clusters") if isinstance(document.get("clusters"), list) else []
    names = [c.get("name") for c in clusters if isinstance(c, dict)]
    ends = st.sampled_from([n for n in names if isinstance(n, str)] or ["us-west"])  # may be unhashable junk
    if draw(st.booleans()):
        return "clusters", {
            "name": draw(st.sampled_from(["sa-east", "x", "Z9", "a.b_c-d"])),
            "endpoint": draw(plausible_for("endpoint")),
            "subnets": draw(st.lists(st.sampled_from(["10.50.0.0/16", "10.51.0.0/24", "fd51::/64", "10.10.1.0/24"]), max_size=2)),
        }
    source = draw(ends)
    target = draw(st.sampled_from([n for n in names if isinstance(n, str) and n != source] or [source]))
    return "links", {"name": draw(st.sampled_from(["new", "us-eu", "l.2"])), "source": source, "target": target}


HOSTILE_EDITS = ("replace", "replace", "plausible", "splice", "delete", "add", "append", "entry")
PLAUSIBLE_EDITS = ("plausible", "plausible", "plausible", "entry", "entry", "splice")


@st.composite
def mutated(draw, base, edits=HOSTILE_EDITS):
    """`base` with a few edits: values replaced by hostile or plausible ones, hostile characters
    spliced into values, keys removed or added, list entries added."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4]))):
        places = list(_places(document))
        operation = draw(st.sampled_from(edits))
        if operation == "splice":
            strings = [path for path, value in places if isinstance(value, str) and path]
            if strings:
                path = draw(st.sampled_from(strings))
                value = _parent(document, path)[path[-1]]
                at = draw(st.integers(0, len(value)))
                _parent(document, path)[path[-1]] = value[:at] + draw(_pieces) + value[at:]
        elif operation == "replace":
            path, _ = draw(st.sampled_from(places[1:] or places))
            if not path:
                return draw(hostile_values)
            _parent(document, path)[path[-1]] = draw(hostile_values)
        elif operation == "plausible":
            kinds = [(path, _kind(path)) for path, value in places if not isinstance(value, dict | list) and _kind(path)]
            if kinds:
                path, kind = draw(st.sampled_from(kinds))
                _parent(document, path)[path[-1]] = draw(plausible_for(kind))
        elif operation == "delete":
            keyed = [path for path, _ in places if path and isinstance(_parent(document, path), dict)]
            if keyed:
                path = draw(st.sampled_from(keyed))
                del _parent(document, path)[path[-1]]
        elif operation == "add":
            maps = [value for _, value in places if isinstance(value, dict)]
            if maps:
                draw(st.sampled_from(maps))[draw(hostile_keys)] = draw(hostile_values)
        elif operation == "append":
            lists = [value for _, value in places if isinstance(value, list)]
            if lists:
                target = draw(st.sampled_from(lists))
                extra = copy.deepcopy(draw(st.sampled_from(target))) if target and draw(st.booleans()) else draw(hostile_values)
                target.append(extra)
        elif isinstance(document, dict) and "clusters" in document:
            section, entry = draw(new_entry(document))
            if isinstance(document.get(section), list):
                document[section].append(entry)
    return document


def _with_raw_tokens(node, raws: dict[str, str]):
    """Replace Raw values (and keys) with plain tokens that are swapped back after dumping."""
    if isinstance(node, Raw):
        token = f"RAWTOKEN{len(raws):04d}X"
        raws[token] = node.text
        return token
    if isinstance(node, dict):
        return {_with_raw_tokens(k, raws): _with_raw_tokens(v, raws) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_raw_tokens(v, raws) for v in node]
    return node


def serialise(document, style: str) -> str:
    raws: dict[str, str] = {}
    data = _with_raw_tokens(document, raws)
    if style == "json":
        text = json.dumps(data, ensure_ascii=False)
    else:
        yaml = YAML(typ="rt")
        yaml.default_flow_style = style == "flow"
        yaml.allow_unicode = True
        yaml.width = 4096
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        text = buffer.getvalue()
    for token, raw in raws.items():
        text = text.replace(f'"{token}"', raw).replace(token, raw)
    return text


@st.composite
def structured_files(draw, edits=HOSTILE_EDITS) -> bytes:
    """A main document, maybe SkyShift manifests and junk documents after it, in YAML or JSON."""
    hostile = edits is HOSTILE_EDITS
    main = draw(mutated(BASE | ({"meshes": [MESH]} if draw(st.booleans()) else {}), edits))
    documents = [] if draw(st.integers(0, 9)) == 9 else [serialise(main, draw(st.sampled_from(["block", "block", "flow", "json"])))]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["link", "cluster", "junk"] if hostile else ["link", "cluster"]))
        if kind == "junk":
            documents.append(draw(st.sampled_from(JUNK_DOCUMENTS)))
        else:
            manifest = draw(mutated(LINK_MANIFEST if kind == "link" else CLUSTER_MANIFEST, edits))
            documents.append(serialise(manifest, draw(st.sampled_from(["block", "flow"]))))
    text = "---\n".join(d if d.endswith("\n") or not d else d + "\n" for d in documents)
    # The first choice of each draw is the plain one: Hypothesis tries first choices most often.
    if draw(st.integers(0, 5)) == 5:
        text = draw(st.sampled_from(["%YAML 1.2\n---\n", "%YAML 1.1\n---\n", "--- \n", "# comment\n", "\ufeff"])) + text
    if draw(st.integers(0, 5)) == 5:
        text = text.replace("\n", draw(st.sampled_from(["\r\n", "\r", "\n\n"])))
    if hostile and draw(st.integers(0, 7)) == 7:
        text += draw(st.sampled_from(["...\n", "...\njunk", "---\n", "\x00", "\t", "# end"]))
    return text.encode("utf-8", "surrogatepass")


@given(structured_files())
@SETTINGS
def test_mutated_configurations_are_refused_cleanly_or_applied_safely(content: bytes) -> None:
    event(check_document(content))


@given(structured_files(PLAUSIBLE_EDITS))
@settings(SETTINGS, max_examples=100)
def test_plausible_configurations_apply_to_safe_files(content: bytes) -> None:
    # Valid documents more often, so that apply and the checks of generated files run often.
    event(check_document(content))


# -- raw text and bytes ---------------------------------------------------------------------------

VALID_TEXT = """\
# A valid configuration, with anchors and aliases used as people use them.
version: 1
provider:
  name: wireguard
  address_pool: 100.96.0.0/16
  persistent_keepalive: 25
clusters:
  - name: &west us-west
    endpoint: 203.0.113.10:51820
    subnets: [10.10.0.0/16]
  - name: &east eu-central
    endpoint: "[2001:db8::20]:51999"
    subnets:
      - 10.20.0.0/16
links:
  - {name: us-eu, source: *west, target: *east}
---
kind: Link
metadata: {name: myLink}
spec: {source_cluster: eu-central, target_cluster: us-west}
"""
BYTE_PIECES = [p.encode("utf-8", "surrogatepass") for p in PIECES] + [
    b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\x7f", b"\x01",
    b"---\n", b"...\n", b"&a ", b"*a", b"*west", b"<<: *west\n", b"!!int ", b"? ", b"- ", b"  ", b"\t",
    b"version: 1\n", b"%TAG ! tag:x:\n", b"\"\\ud800\"", b"a" * 5000,
]


def _bomb(levels: int, width: int, where: str) -> bytes:
    lines = ["version: 1", 'x0: &a0 ["lol", "lol"]']
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    lines.append(f"{where}: *a{levels}")
    return ("\n".join(lines) + "\n").encode()


def _deep(depth: int, kind: str) -> bytes:
    if kind == "flow-list":
        return b"version: 1\nclusters: " + b"[" * depth + b"]" * depth + b"\n"
    if kind == "flow-map":
        return b"version: 1\nclusters: " + b"{a: " * depth + b"1" + b"}" * depth + b"\n"
    if kind == "unclosed":
        return b"version: 1\nlinks: " + b"[" * depth + b"\n"
    if kind == "compact":
        return b"version: 1\nlinks:\n" + b"- " * depth + b"a\n"
    # block mappings, one level per line: the file grows with the square of the depth
    depth = min(depth, 400)
    return b"version: 1\nprovider:\n" + b"".join(b" " * (i + 1) + b"k:\n" for i in range(depth)) + b" " * (depth + 1) + b"v: 1\n"


@st.composite
def edited_valid_text(draw) -> bytes:
    data = VALID_TEXT.encode()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "insert", "delete", "replace"]))
        if edit == "insert":
            data = data[:at] + draw(st.one_of(st.sampled_from(BYTE_PIECES), st.binary(min_size=1, max_size=4))) + data[at:]
        elif edit == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 40)) :]
        else:
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


raw_files = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    edited_valid_text(),
    edited_valid_text(),
    edited_valid_text(),
    st.builds(_bomb, st.integers(1, 12), st.integers(1, 12), st.sampled_from(["clusters", "links", "meshes", "provider", "extra"])),
    st.builds(_deep, st.integers(1, 6000), st.sampled_from(["flow-list", "flow-map", "unclosed", "compact", "block"])),
    st.sampled_from(
        [
            b"", b"\n", b" ", b"\t", b"---", b"---\n---\n", b"...", b"\xef\xbb\xbf", b"\xef\xbb\xbfversion: 1\n",
            b"\xef\xbb\xbf\xef\xbb\xbfversion: 1\n", "version: 1\n".encode("utf-16"), "version: 1\n".encode("utf-32"),
            b"\x00", b"version: 1\x00\n", b"version:\t1\n", b"\tversion: 1\n", b"version: 1\nclusters:\n\t- a\n",
            b"&a [*a]\n", b"&a {x: *a}\n", b"version: 1\nclusters: &c [*c]\n", b"version: 1\nprovider: &p {x: *p}\n",
            b"version: 1\nlinks: &l [{name: a, source: *l, target: b}]\n", b"version: 1\n" + b"#" * 1_000_000 + b"\n",
            b"version: 1\nclusters: [" + b"a" * 1_000_000 + b"]\n", b"version: 1\nversion: 1\n",
            b"version: 1\nprovider: {name: wireguard, name: x}\n", b"version: 1\nclusters:\n  - name: a\n    name: b\n",
            b"version: 1\n<<: {clusters: []}\n", b"version: 1\nx: &x {a: 1}\nprovider:\n  <<: *x\n",
            b"version: 1\nprovider:\n  <<: [*nope]\n", b"version: 1\n? [a]\n: 1\n", b"version: 1\n1: 2\n",
            b"version: 1\nnull: 2\n~: 3\n", b"!!map {version: 1}\n", b"--- !!str\nversion: 1\n", b"%YAML 9.9\n---\nversion: 1\n",
            b"%YAML 1.1\n%YAML 1.1\n---\n", b"version: 1\n---\n- junk\n---\n42\n---\nkind: Link\n",
            b"version: 1\n" + b"? " * 40 + b"a\n", b"version: 1\np: &p [[a]]\n? *p\n: 1\n", b"{[a]: 1}\n",
            b"version: 1\nclusters: [{? {a: b}: c}]\n", b"version: 1\n? !!binary aGVsbG8=\n: 1\n",
            b"version: !!bool maybe\n", b"version: 2001-02-30\n", b"version: 0x" + b"f" * 4000 + b"\n",
        ]
    ),
)


@given(raw_files)
@SETTINGS
def test_raw_text_and_bytes_are_refused_cleanly(content: bytes) -> None:
    event(check_document(content))


# -- every catalogued hostile value, each in one place --------------------------------------------
# Hypothesis explores combinations; this makes sure each entry of the catalogues runs at least once.

_LEAVES = [path for path, value in _places(BASE) if path and not isinstance(value, dict | list)]
_STRING_LEAVES = [path for path in _LEAVES if isinstance(_parent(BASE, path)[path[-1]], str)]


def _with(path, value):
    document = copy.deepcopy(BASE)
    _parent(document, path)[path[-1]] = value
    return document


@pytest.mark.parametrize("index", range(len(RAW_VALUES)), ids=lambda i: f"raw{i}")
def test_each_raw_yaml_value_in_a_field(index: int) -> None:
    path = _LEAVES[index % len(_LEAVES)]
    check_document(serialise(_with(path, Raw(RAW_VALUES[index])), "block").encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("index", range(len(PIECES)), ids=lambda i: f"piece{i}")
def test_each_hostile_piece_inside_a_string_field(index: int) -> None:
    path = _STRING_LEAVES[index % len(_STRING_LEAVES)]
    value = _parent(BASE, path)[path[-1]]
    spliced = value[: len(value) // 2] + PIECES[index] + value[len(value) // 2 :]
    check_document(serialise(_with(path, spliced), "block").encode("utf-8", "surrogatepass"))


def _with_all(paths, value):
    document = copy.deepcopy(BASE)
    for path in paths:
        _parent(document, path)[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("paths", "value"),
    [
        pytest.param(paths, value, id=f"{kind}{index}-{paths[0][-1]}")
        for kind, values in PLAUSIBLE.items()
        for index, value in enumerate(values)
        for paths in _PLACES_FOR[kind]
    ],
)
def test_each_plausible_value_where_it_belongs(paths, value) -> None:
    check_document(serialise(_with_all(paths, value), "block").encode())


# -- generated files edited by hand: plan reads them back ------------------------------------------
# plan reads every generated config and key file to find changes made outside skyplan. Whatever
# is in them, plan reports drift or one clean error and writes nothing; apply puts them right.

CONFIG_LINES = [
    "MTU = ²", "MTU = ١٢٨٠", "ListenPort = -1", "ListenPort = 99999999999999999999999", "ListenPort =", "ListenPort",
    "PrivateKey = x", "PrivateKey = " + "A" * 43 + "B", "PrivateKey = " + "A" * 44, "PublicKey = " + "A" * 43 + "=",
    "PresharedKey = " + "A" * 43 + "=", "PostUp = touch /tmp/pwned", "[Peer]", "[peer]", "[Interface]", "[Other]",
    "AllowedIPs = garbage, , 10.0.0.0/8", "Endpoint = [::1]:51820", "PersistentKeepalive = off", "= value", "==",
    "key without equals", "# comment", "Address = 100.96.0.9/32, fd00::9/128", "\ufeff[Interface]", "\x00", "\t",
    "PersistentKeepalive = ²", "ListenPort = 0x10", "MTU = 1e3", "A" * 100_000,
]
CONFIG_VALUES = [
    "", "²", "١٢٨٠", "-1", "0", "0x10", "1e3", "9" * 30, "off", "x", "A" * 43 + "=", "A" * 43 + "B", "10.0.0.0/8,",
    ", ,", "[::1]:1", "1.2.3.4", "é", "\x00", "\t1", "1 2", "100.96.0.1/32, fd00::1/128",
]


@pytest.fixture(scope="module")
def applied_workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("applied")
    (root / "links.yaml").write_text(serialise(BASE, "block"))
    previous = os.getcwd()
    os.chdir(root)
    try:
        assert _skyplan("apply", "--auto-approve").exit_code == 0
    finally:
        os.chdir(previous)
    return root


@st.composite
def edited_files(draw, names: list[str]) -> dict[str, tuple]:
    """Edits to a few of the generated configs and key files: (edit, where, material)."""
    edits: dict[str, tuple] = {}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        edit = draw(st.sampled_from(["insert", "insert", "replace", "delete-line", "bytes", "empty", "remove", "folder"]))
        material = st.sampled_from(CONFIG_VALUES) if edit == "replace" else st.sampled_from(CONFIG_LINES)
        edits[name] = (edit, draw(st.integers(0, 40)), draw(st.one_of(material, st.binary(max_size=30))))
    return edits


def _edited(original: bytes, edit: str, at: int, material) -> bytes | None:
    lines = original.split(b"\n")
    at = at % len(lines)
    text = material if isinstance(material, bytes) else material.encode("utf-8")
    if edit == "insert":
        return b"\n".join(lines[:at] + [text] + lines[at:])
    if edit == "replace":  # the value of a line
        key = lines[at].split(b"=", 1)[0]
        return b"\n".join(lines[:at] + [key + b"= " + text] + lines[at + 1 :])
    if edit == "delete-line":
        return b"\n".join(lines[:at] + lines[at + 1 :])
    if edit == "every value":
        return b"\n".join(line.split(b"=", 1)[0] + b"= " + text if b"=" in line else line for line in lines)
    if edit == "bytes":
        return original[:at] + text + original[at:]
    return b"" if edit == "empty" else None  # removed, or replaced by a folder


def _snapshot(root: Path) -> dict[str, bytes | None]:
    # A plan that succeeds may record that the state passed its checks (state/checked.py), that
    # its refresh found no drift (state/refreshed.py), or that it found no changes
    # (plan/unchanged.py): cache entries, not files it changes.
    records = {Path(".skyplan/cache") / name for name in ("state-checked.json", "refresh.json", "no-changes.json")}
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*")) if p.relative_to(root) not in records}


GENERATED = sorted(
    [f"wireguard/{c['name']}/wgsky0.conf" for c in BASE["clusters"]] + [f".skyplan/keys/{c['name']}.key" for c in BASE["clusters"]]
)


def check_drift(applied_workspace: Path, edits: dict[str, tuple]) -> str:
    """Edit generated files; plan refuses cleanly or shows drift, writing nothing; apply converges."""
    with tempfile.TemporaryDirectory(prefix="skyplan-drift-") as folder:
        root = Path(folder) / "ws"
        shutil.copytree(applied_workspace, root)
        written: dict[str, bytes | None] = {}
        for name, (edit, at, material) in edits.items():
            written[name] = _edited((root / name).read_bytes(), edit, at, material)
            if written[name] is None:
                (root / name).unlink()
                if edit == "folder":
                    (root / name).mkdir()
            else:
                (root / name).write_bytes(written[name])
        before = _snapshot(root)
        previous = os.getcwd()
        os.chdir(root)
        try:
            planned = _skyplan("plan")
            shown = f"plan exited {planned.exit_code}:\n{planned.output[:3000]}"
            assert planned.exit_code in (0, 1) and "Traceback" not in planned.output, shown
            assert "unexpected internal error" not in planned.output, shown
            if planned.exit_code == 1:
                assert len(planned.stderr.splitlines()) == 1 and planned.stderr.startswith("Error: "), shown
            assert _snapshot(root) == before, "plan changed files"
            if planned.exit_code == 1:
                return "plan refused"
            applied = _skyplan("apply", "--auto-approve")
            assert applied.exit_code == 0, f"apply after drift failed:\n{applied.output[:3000]}"
            for name in (n for n in GENERATED if n.endswith(".conf")):
                # A file left as edited is one whose edits skyplan finds meaningless (comments,
                # case, a setting repeated); the plan below shows it agrees with the rest.
                if name not in written or (root / name).read_bytes() != written[name]:
                    check_generated_config(root / name)
            again = _skyplan("plan", "--detailed-exitcode")
            assert again.exit_code == 0, f"changes right after apply:\n{again.output[:3000]}"
            return "drift put right"
        finally:
            os.chdir(previous)


@given(edited_files(GENERATED))
@settings(SETTINGS, max_examples=80)
def test_hand_edited_configs_and_keys_are_read_back_cleanly(applied_workspace, edits) -> None:
    event(check_drift(applied_workspace, edits))


@pytest.mark.parametrize("value", CONFIG_VALUES)
def test_each_odd_value_in_every_setting_of_a_hand_edited_config(applied_workspace, value) -> None:
    edits = {GENERATED[-1]: ("every value", 0, value)}
    check_drift(applied_workspace, edits)
