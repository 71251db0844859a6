"""What import carries and how, case by case: external peers, keepalives, endpoints, subnets, names."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from .test_bad_inputs import _fill


def _import(skyplan, workspace: Path, files: dict[str, str], *args: str):
    private: dict[str, str] = {}
    shared: dict[str, str] = {}
    for name, text in files.items():
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(text, private, shared))
    result = skyplan("import", *files, *args)
    assert result.exit_code == 0, result.output
    shown = result.output.split(" as import writes it:\n", 1)[1].rsplit("\nImport: ", 1)[0]
    document = YAML(typ="safe").load("\n".join(line[2:] for line in shown.split("\n")))
    return result.output, document, private


HUB = """[Interface]
PrivateKey = {private:hub}
Address = 10.0.0.1/24
ListenPort = 51820
"""


def test_external_peers_are_named_by_their_comment_or_their_key(skyplan, workspace: Path) -> None:
    out, document, _ = _import(
        skyplan, workspace,
        {
            "hub.conf": HUB + """
# laptop of ana
[Peer]
PublicKey = {public:x}
Endpoint = 203.0.113.5:51820
AllowedIPs = 10.0.0.7/32

[Peer]
# Name: office
PublicKey = {public:y}
Endpoint = office.example.org:51820
AllowedIPs = 192.168.5.0/24

# roamer
[Peer]
PublicKey = {public:z}
AllowedIPs = 10.0.0.8/32
""",
        },
    )  # fmt: skip
    clusters = {c["name"]: c for c in document["clusters"]}
    (laptop,) = [n for n in clusters if n.startswith("peer-")]  # "laptop of ana" is no valid name
    assert re.fullmatch(r"peer-[0-9a-f]{8}", laptop)
    assert clusters[laptop]["address"] == "10.0.0.7" and clusters[laptop]["endpoint"] == "203.0.113.5:51820"
    assert clusters["office"]["endpoint"] == "office.example.org:51820"
    assert clusters["office"]["subnets"] == ["192.168.5.0/24"]
    assert "address" not in clusters["office"]
    # The office is given an address from the pool, which its peers now route to it.
    assert re.search(r"hub.conf:12: external peer 'office' has no overlay address in any file's AllowedIPs: skyplan gives it 10\.0\.0\.\d+", out)
    # Nobody dials the hub and the roamer has no endpoint: that peering can never start.
    assert "hub.conf:19: [Peer] roamer is not carried: no file has an Endpoint for either 'hub' or 'roamer'" in out
    assert "roamer" not in clusters
    assert "hub.conf:1: no peer dials 'hub'" in out
    assert sorted(link["name"] for link in document["links"]) == sorted([f"hub.{laptop}", "hub.office"])


def test_a_cluster_gets_one_keepalive_and_one_set_of_subnets_and_each_difference_is_named(skyplan, workspace: Path) -> None:
    spoke = """[Interface]
PrivateKey = {private:NAME}
Address = 10.0.0.ADDR/24
[Peer]
PublicKey = {public:hub}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.1/32HUBNETS
PersistentKeepalive = KEEP
"""
    hub = HUB + "".join(
        f"[Peer]\nPublicKey = {{public:{name}}}\nAllowedIPs = 10.0.0.{addr}/32\n{keep}" for name, addr, keep in
        [("s1", 2, "PersistentKeepalive = 25\n"), ("s2", 3, "PersistentKeepalive = 25\n"), ("s3", 4, "")]
    )  # fmt: skip
    files = {"hub.conf": hub}
    for name, addr, keep, nets in [("s1", 2, 20, ", 10.8.0.0/16"), ("s2", 3, 20, ""), ("s3", 4, 20, "")]:
        files[f"{name}.conf"] = spoke.replace("NAME", name).replace("ADDR", str(addr)).replace("KEEP", str(keep)).replace("HUBNETS", nets)
    out, document, _ = _import(skyplan, workspace, files)
    clusters = {c["name"]: c for c in document["clusters"]}
    assert clusters["hub"]["subnets"] == ["10.8.0.0/16"]
    assert document["provider"]["persistent_keepalive"] == 20
    assert clusters["hub"]["persistent_keepalive"] == 25
    assert "hub.conf:13: PersistentKeepalive 0 for 's3' is not carried: skyplan gives every peer of a cluster one keepalive, here 25" in out
    assert "s2.conf:4: [Peer] hub: skyplan routes all of its subnets from every peer, and adds 10.8.0.0/16 here" in out
    assert clusters["hub"]["endpoint"] == "192.0.2.1:51820"


def test_a_missing_endpoint_for_a_dialled_cluster_is_named(skyplan, workspace: Path) -> None:
    files = {
        "a.conf": """[Interface]
PrivateKey = {private:a}
Address = 10.0.0.1/24
ListenPort = 51820
[Peer]
PublicKey = {public:b}
AllowedIPs = 10.0.0.2/32
[Peer]
PublicKey = {public:c}
AllowedIPs = 10.0.0.3/32
""",
        "b.conf": """[Interface]
PrivateKey = {private:b}
Address = 10.0.0.2/24
[Peer]
PublicKey = {public:a}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.1/32
PersistentKeepalive = 25
""",
        "c.conf": """[Interface]
PrivateKey = {private:c}
Address = 10.0.0.3/24
[Peer]
PublicKey = {public:a}
AllowedIPs = 10.0.0.1/32
PersistentKeepalive = 25
""",
    }
    out, document, _ = _import(skyplan, workspace, files)
    assert (
        "c.conf:4: [Peer] a has no Endpoint here; skyplan writes its endpoint 192.0.2.1:51820 (from b.conf:6) in every peer's config"
    ) in out
    assert {c["name"]: c.get("endpoint") for c in document["clusters"]} == {"a": "192.0.2.1:51820", "b": None, "c": None}


def test_names_too_long_for_a_link_get_a_short_stable_one(skyplan, workspace: Path) -> None:
    long_a, long_b = "a" * 40, "b" * 40
    files = {
        f"{long_a}.conf": """[Interface]
PrivateKey = {private:a}
Address = 10.0.0.1/24
ListenPort = 51820
[Peer]
PublicKey = {public:b}
AllowedIPs = 10.0.0.2/32
""",
        f"{long_b}.conf": """[Interface]
PrivateKey = {private:b}
Address = 10.0.0.2/24
[Peer]
PublicKey = {public:a}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.1/32
PersistentKeepalive = 25
""",
    }
    _, first, _ = _import(skyplan, workspace, files)
    (link,) = first["links"]
    assert re.fullmatch(r"link-[0-9a-f]{8}", link["name"]) and (link["source"], link["target"]) == (long_a, long_b)
    # The same pair always gets the same name: it is made from the two names.
    result = skyplan("import", f"{long_b}.conf", f"{long_a}.conf")
    assert f"+ link.{link['name']}  " in result.output


def test_out_elsewhere_puts_the_state_and_keys_beside_it(skyplan, workspace: Path) -> None:
    from .confs import write_hub_and_spoke

    files = write_hub_and_spoke(workspace / "etc")
    (workspace / "site").mkdir()
    result = skyplan("import", *map(str, files.files), "--out", "site/links.yaml", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (workspace / "site" / ".skyplan" / "state.json").is_file()
    assert (workspace / "site" / ".skyplan" / "keys" / "hub.key").is_file()
    assert not (workspace / ".skyplan").exists()
    assert "No changes." not in skyplan("plan", "site/links.yaml").output
    assert skyplan("apply", "site/links.yaml", "--auto-approve").exit_code == 0
    assert (workspace / "site" / "wireguard" / "hub" / "wg0.conf").is_file()


def test_the_overlay_address_is_the_first_inside_the_pool_and_the_others_are_named(skyplan, workspace: Path) -> None:
    files = {
        "a.conf": """[Interface]
PrivateKey = {private:a}
Address = 192.168.1.5/24, 10.0.0.1/24
Address = fd00::1/64
ListenPort = 51820
[Peer]
PublicKey = {public:b}
AllowedIPs = 10.0.0.2/32
""",
        "b.conf": """[Interface]
PrivateKey = {private:b}
Address = 10.0.0.2/24
[Peer]
PublicKey = {public:a}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.1/32
PersistentKeepalive = 25
""",
    }
    out, document, _ = _import(skyplan, workspace, files, "--address-pool", "10.0.0.0/24")
    assert {c["name"]: c["address"] for c in document["clusters"]} == {"a": "10.0.0.1", "b": "10.0.0.2"}
    assert "a.conf:3: Address 192.168.1.5/24 is not carried: skyplan gives each cluster one overlay address" in out
    assert "a.conf:4: Address fd00::1/64 is not carried" in out


def test_configs_skyplan_wrote_for_a_transit_hub_import_without_the_routes_it_forwards(skyplan, workspace: Path) -> None:
    # store-1's entry for the hub holds store-2's subnet, which the hub routes on to store-2: it
    # is store-2's network, not the hub's (as read, the hub's subnets would overlap its spokes').
    import shutil

    source = workspace / "applied"
    source.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "examples/hub-nat/links.yaml", source / "links.yaml")
    assert skyplan("apply", "--auto-approve", str(source / "links.yaml")).exit_code == 0
    confs = sorted(str(p.relative_to(workspace)) for p in source.glob("wireguard/*/wgsky0.conf"))
    result = skyplan("import", *confs)
    assert result.exit_code == 0, result.output
    shown = result.output.split(" as import writes it:\n", 1)[1].rsplit("\nImport: ", 1)[0]
    document = YAML(typ="safe").load("\n".join(line[2:] for line in shown.split("\n")))
    subnets = {c["name"]: c.get("subnets") for c in document["clusters"]}
    assert subnets["hub"] == ["10.0.0.0/16"], subnets
    assert subnets["store-1"] == ["10.1.0.0/16"] and subnets["store-2"] == ["10.2.0.0/16"], subnets
    assert re.search(r"AllowedIPs 10\.2\.0\.0/16 for 'hub' is not carried: 'hub' routes it on to 'store-2'", result.output)


def test_an_all_zero_preshared_key_is_no_preshared_key(skyplan, workspace: Path) -> None:
    # wg's own word for "none": imported as a peering without a key, never as a key file.
    zero = "A" * 43 + "="
    a = "[Interface]\nPrivateKey = {private:a}\nAddress = 10.0.0.1/32\nListenPort = 51820\n\n[Peer]\nPublicKey = {public:b}\nPresharedKey = " + zero + "\nEndpoint = 192.0.2.2:51820\nAllowedIPs = 10.0.0.2/32\n"
    b = "[Interface]\nPrivateKey = {private:b}\nAddress = 10.0.0.2/32\nListenPort = 51820\n\n[Peer]\nPublicKey = {public:a}\nPresharedKey = " + zero + "\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 10.0.0.1/32\n"
    _, document, _ = _import(skyplan, workspace, {"a.conf": a, "b.conf": b})
    assert [link.get("preshared_key") for link in document["links"]] == [None]
    assert skyplan("import", "a.conf", "b.conf", "--auto-approve").exit_code == 0
    assert not list(workspace.glob(".skyplan/keys/*.psk"))
    plan = skyplan("plan")
    assert plan.exit_code == 0 and "0 to add" in plan.output and "0 to destroy" in plan.output, plan.output
