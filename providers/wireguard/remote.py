"""The gateway side of the WireGuard provider: keys, configs and the live interface, over SSH.

Every function is one `Connections.run` of a fixed POSIX sh script (`sh -c SCRIPT sh ARG...`):
values travel as quoted arguments, config text on stdin, and secrets not at all. The private key
is generated on the gateway and never leaves it: scripts put it into the config there, and
whatever they print back has had private and preshared keys removed there. The one exception is
`preshared_keys`: a peering's preshared key has to reach its other end, so it is read into
skyplan's memory (never its disk) and goes out again inside a config, on stdin; refresh sees
preshared keys only as salted digests (`inspect`). A script that fails
names the step (exit code `_STEP_FAILED`, the step on its first stderr line); its stderr is
masked with `keys.redact` before it reaches an exception.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from skyplan_wireguard import keys
from skyplan_wireguard.psk import is_key as is_preshared_key
from skyplan_wireguard.settings import INTERFACE_PATTERN
from skyplan_wireguard.ssh import Connections, Gateway, GatewayError, RemoteCommandError, Result

WG_DIR = "/etc/wireguard"

# The exit code by which a script says "this step failed", its name on the first stderr line.
_STEP_FAILED = 97
_INTERFACE = re.compile(INTERFACE_PATTERN)
# ip(8) prints route types before the destination; such routes are not skyplan's to manage.
_ROUTE_TYPES = frozenset(
    "unicast local broadcast multicast throw unreachable prohibit blackhole nat anycast".split()
)


class GatewayRequestError(GatewayError):
    """What skyplan was about to send to a gateway is not valid; nothing was sent."""


@dataclass(frozen=True)
class Forwarding:
    """Whether the host forwards IPv4 and IPv6 packets; None where it could not be read."""

    ipv4: bool | None = None
    ipv6: bool | None = None


@dataclass(frozen=True)
class LivePeer:
    public_key: str
    endpoint: str | None  # as wg shows it; None for "(none)" (or anything not shaped as an endpoint)
    allowed_ips: tuple[str, ...]  # sorted, normalised CIDRs
    latest_handshake: int  # unix seconds, 0 = never
    persistent_keepalive: int  # 0 = off
    has_preshared_key: bool


@dataclass(frozen=True)
class LiveInterface:
    key_public: str | None  # `wg pubkey` of the key file; None: no key file
    key_problem: str | None  # the key file exists but holds no valid key (nothing of it quoted)
    config_text: str | None  # the config file with its PrivateKey line(s) removed ON THE HOST; None: no file
    config_key_public: str | None  # public key of the PrivateKey in the file (computed on the host)
    up: bool  # the interface exists
    public_key: str | None  # the running interface's (wg show <i> public-key)
    listen_port: int | None
    peers: dict[str, LivePeer]  # by public key
    addresses: tuple[str, ...]  # sorted CIDRs on the interface
    mtu: int | None
    routes: tuple[str, ...]  # sorted destinations routed via the interface (main table, v4+v6)
    # something other than a file (a folder, a dangling symlink) is where the config goes
    config_problem: str | None = None
    # the numbers of the config file's lines that config_text leaves out (its PrivateKey lines)
    config_key_lines: tuple[int, ...] = ()
    # the host's forwarding switches (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding)
    forwarding: Forwarding = Forwarding()
    # peer public key -> psk_digest(salt, its running preshared key): whether two ends hold the
    # same key, told without the key leaving either host
    psk_digests: dict[str, str] = field(default_factory=dict)


# -- awk programs run on the gateway ------------------------------------------------------------------
# Lines are read the way wg(8) reads them: '#' starts a comment, whitespace does not count and
# keys match in any case; so "  privatekey=…  # old" is a PrivateKey line too.

# The config for the controller: PrivateKey lines dropped, PresharedKey values hidden, and any
# other key-shaped text (a key pasted into a comment or a PostUp line) masked; only the values of
# PublicKey lines, which are public, are kept as they are. With `-v b=BOUNDARY` (inspect), the
# numbers of the lines dropped follow at the end, in a `BOUNDARY key_lines` section: one pass
# over the file gives both.
MASK_CONFIG_AWK = r"""
BEGIN { shape = ""; for (n = 0; n < 43; n++) shape = shape "[A-Za-z0-9+/]"; shape = shape "=" }
END { if (b != "") printf "%s key_lines\n%s", b, dropped }
{
    s = $0; sub(/#.*/, "", s); gsub(/[[:space:]]/, "", s); s = tolower(s)
    if (index(s, "privatekey=") == 1) { dropped = dropped NR "\n"; next }
    if (index(s, "presharedkey=") == 1) { print "PresharedKey = (hidden)"; next }
    line = $0
    if (index(s, "publickey=") == 1) {
        c = index(line, "#")
        if (c == 0) { print line; next }
        tail = substr(line, c); gsub(shape, "(key)", tail); print substr(line, 1, c - 1) tail; next
    }
    gsub(shape, "(key)", line); print line
}
"""

# The value of the last PrivateKey line of [Interface], for `wg pubkey` on the host.
CONFIG_KEY_AWK = r"""
{
    s = $0; sub(/#.*/, "", s); gsub(/[[:space:]]/, "", s)
    if (substr(s, 1, 1) == "[") { inside = (tolower(s) == "[interface]"); next }
    if (inside && tolower(substr(s, 1, 11)) == "privatekey=") v = substr(s, 12)
}
END { if (v != "") print v }
"""

# `wg show <i> dump` for the controller: the private key (line 1, field 1) and every preshared
# key (peer lines, field 2) replaced by "(hidden)"; "(none)" stays, it says there is none.
MASK_DUMP_AWK = r"""
BEGIN { FS = "\t"; OFS = "\t" }
NR == 1 { if ($1 != "(none)") $1 = "(hidden)"; print; next }
{ if ($2 != "(none)") $2 = "(hidden)"; print }
"""

# The config as pushed (stdin) with `PrivateKey = <key file>` after its first [Interface] line.
# The key is read by awk itself (getline), so it is never an argument of any process.
INSERT_KEY_AWK = r"""
BEGIN { if ((getline key < keyfile) <= 0) bad = 2; gsub(/[[:space:]]/, "", key) }
bad { exit }
{ print }
!done {
    s = $0; sub(/#.*/, "", s); gsub(/^[[:space:]]+/, "", s); gsub(/[[:space:]]+$/, "", s)
    if (tolower(s) == "[interface]") { print "PrivateKey = " key; done = 1 }
}
END { if (bad) exit bad; if (!done) exit 3 }
"""

# Each [Peer]'s `PublicKey TAB PresharedKey`, when it has both: what `wg show <i> preshared-keys`
# prints, read from the file while the interface is down. Only [Peer] sections give output:
# nothing of the [Interface] section (its PrivateKey) is ever printed.
PEER_PSKS_AWK = r"""
function flush() { if (peer && pub != "" && psk != "") print pub "\t" psk; pub = ""; psk = "" }
{
    s = $0; sub(/#.*/, "", s); gsub(/[[:space:]]/, "", s)
    if (substr(s, 1, 1) == "[") { flush(); peer = (tolower(s) == "[peer]"); next }
    if (!peer) next
    k = tolower(s)
    if (index(k, "publickey=") == 1) pub = substr(s, 11)
    else if (index(k, "presharedkey=") == 1) psk = substr(s, 14)
}
END { flush() }
"""

# `ip -o addr show dev <i>`: the addresses, without IPv6 link-local ones (the kernel's).
ADDRESSES_AWK = r"""$3 == "inet" || ($3 == "inet6" && $0 !~ / scope link /) { print $4 }"""

# `ip route show dev <i>`: destinations of the routes not made by the kernel for an address.
ROUTES_AWK = r"""
/^[[:space:]]/ || / proto kernel/ { next }
$1 ~ /^(unicast|local|broadcast|multicast|throw|unreachable|prohibit|blackhole|nat|anycast)$/ { next }
{ print $1 }
"""


def _awk(name: str, program: str) -> str:
    return f"{name}={shlex.quote(program)}\n"


# -- the scripts ----------------------------------------------------------------------------------------

# Every script: strict about unset variables, no globbing of unquoted words (lists of CIDRs are
# split on spaces), files private, and (all but inspect, which only reads and says nothing of
# its errors) a temporary file for stderr that always goes.
_PRELUDE_READING = r"""
set -u
set -f
umask 077
unset LOG_LEVEL  # wireguard-go would keep our stdout open, and ssh would wait for it
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
d=/etc/wireguard
"""

_PRELUDE = _PRELUDE_READING + r"""
tmps=
e=$(mktemp 2>/dev/null) && tmps=$e || e=/dev/null
cleanup() { [ -z "$tmps" ] || rm -rf $tmps; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
trap 'exit 130' INT
failed() {  # STEP [ERRFILE]: say which step failed and what it printed, then stop
    printf '%s\n' "$1" >&2
    if [ $# -gt 1 ] && [ -s "$2" ]; then cat "$2" >&2; fi
    exit 97
}
"""

# What inspect costs a gateway is mostly the processes it starts (~1-2 ms each): every one
# it can do without (a temporary file, `cat`, a second pass of awk over the config) is left out.
_INSPECT = (
    _PRELUDE_READING
    + _awk("mask_config", MASK_CONFIG_AWK)
    + _awk("config_key", CONFIG_KEY_AWK)
    + _awk("mask_dump", MASK_DUMP_AWK)
    + r"""
i=$1 b=$2 salt=${3:-}
mark() { printf '%s %s\n' "$b" "$*"; }
pub_of_file() {  # FILE: "ok PUBLIC" or "bad"
    if p=$(wg pubkey < "$1" 2>/dev/null); then printf 'ok %s\n' "$p"; else echo bad; fi
}
if [ -e "$d/$i.key" ] || [ -L "$d/$i.key" ]; then mark key "$(pub_of_file "$d/$i.key")"; else mark key none; fi
if [ -f "$d/$i.conf" ]; then
    v=$(awk "$config_key" < "$d/$i.conf" 2>/dev/null)
    if [ -z "$v" ]; then mark config_key none
    elif p=$(printf '%s\n' "$v" | wg pubkey 2>/dev/null); then mark config_key ok "$p"
    else mark config_key bad
    fi
    v=
    mark config file
    awk -v b="$b" "$mask_config" < "$d/$i.conf" 2>/dev/null
elif [ -e "$d/$i.conf" ] || [ -L "$d/$i.conf" ]; then
    mark config_key none
    mark config other
else
    mark config_key none
    mark config none
fi
mark link
ip -o link show dev "$i" 2>/dev/null
mark dump
if out=$(wg show "$i" dump 2>/dev/null) && [ -n "$out" ]; then printf '%s\n' "$out" | awk "$mask_dump"; fi
out=
mark addresses
ip -o addr show dev "$i" 2>/dev/null
mark routes4
ip -4 route show dev "$i" 2>/dev/null
mark routes6
ip -6 route show dev "$i" 2>/dev/null
# dash's read of a /proc/sys file gives the value but exits 1: the value is what counts.
f4= f6=
{ read -r f4 < /proc/sys/net/ipv4/ip_forward; } 2>/dev/null
{ read -r f6 < /proc/sys/net/ipv6/conf/all/forwarding; } 2>/dev/null
[ -n "$f4" ] || f4=-
[ -n "$f6" ] || f6=-
mark forwarding "$f4" "$f6"
mark psk_digests
# A salted SHA-256 of each running preshared key (printf is the shell's own: no key in any argv).
if [ -n "$salt" ] && command -v sha256sum >/dev/null 2>&1 && out=$(wg show "$i" preshared-keys 2>/dev/null); then
    tab=$(printf '\t')
    printf '%s\n' "$out" | while IFS="$tab" read -r pub psk; do
        [ "$psk" = "(none)" ] || [ -z "$psk" ] && continue
        h=$(printf '%s%s' "$salt" "$psk" | sha256sum 2>/dev/null) || continue
        printf '%s\t%s\n' "$pub" "${h%% *}"
    done
fi
out=
mark end
"""
)

_ENSURE_KEY = (
    _PRELUDE
    + r"""
i=$1 r=$2 k=$d/$i.key replace=
[ -d "$d" ] || mkdir -m 700 "$d" 2>"$e" || failed "creating $d failed" "$e"
if [ -e "$k" ] || [ -L "$k" ]; then
    if p=$(wg pubkey < "$k" 2>/dev/null); then
        if [ -z "$r" ] || [ "$p" != "$r" ]; then printf '%s\n' "$p"; exit 0; fi
    elif [ -z "$r" ]; then
        failed "the key file $k holds no valid WireGuard private key; it was left as it is (move it away to have a new key generated)"
    fi
    replace=1
fi
t=$(mktemp "$d/.skyplan-$i.key.XXXXXX" 2>"$e") || failed "creating a file in $d failed" "$e"
tmps="$tmps $t"
wg genkey > "$t" 2>"$e" || failed "wg genkey failed" "$e"
sync "$t" 2>/dev/null
if [ -n "$replace" ]; then
    mv -f "$t" "$k" 2>"$e" || failed "replacing $k failed" "$e"
else
    # A hard link makes the file only if there is none: a run racing this one keeps its key.
    ln "$t" "$k" 2>/dev/null
fi
sync "$d" 2>/dev/null
p=$(wg pubkey < "$k" 2>"$e") || failed "wg pubkey of $k failed" "$e"
printf '%s\n' "$p"
"""
)

# Addresses, MTU and routes to what was asked, then the live key check: after `wg-quick up`
# (whose routes skip entries covered by an address's prefix) and after `wg syncconf` alike.
_RECONCILE = r"""
ip link set dev "$i" up 2>"$e" || failed "setting $i up failed" "$e"
# Removed before added: removing an IPv4 primary address takes its secondaries with it.
for a in $(ip -o addr show dev "$i" 2>/dev/null | awk "$addresses_awk"); do
    case " $addrs " in
    *" $a "*) ;;
    *) ip addr del "$a" dev "$i" 2>"$e" || failed "removing address $a from $i failed" "$e" ;;
    esac
done
have=" $(ip -o addr show dev "$i" 2>/dev/null | awk "$addresses_awk" | tr '\n' ' ') "
for a in $addrs; do
    case "$have" in
    *" $a "*) ;;
    *) ip addr add "$a" dev "$i" 2>"$e" || failed "adding address $a to $i failed" "$e" ;;
    esac
done
if [ -n "$mtu" ]; then
    ip link set dev "$i" mtu "$mtu" 2>"$e" || failed "setting the MTU of $i to $mtu failed" "$e"
fi
for f in -4 -6; do
    for r in $(ip "$f" route show dev "$i" 2>/dev/null | awk "$routes_awk"); do
        case " $routes " in
        *" $r "*) ;;
        *) ip "$f" route del "$r" dev "$i" 2>"$e" || failed "removing route $r via $i failed" "$e" ;;
        esac
    done
done
for r in $routes; do
    ip route replace "$r" dev "$i" 2>"$e" || failed "adding route $r via $i failed" "$e"
done
live=$(wg show "$i" public-key 2>"$e") || failed "wg show $i public-key failed" "$e"
[ "$live" = "$want" ] || failed "the live interface $i does not have the public key given (wg show $i public-key differs)"
"""

_PUSH = (
    _PRELUDE
    + _awk("insert_key", INSERT_KEY_AWK)
    + _awk("addresses_awk", ADDRESSES_AWK)
    + _awk("routes_awk", ROUTES_AWK)
    + r"""
i=$1 want=$2 mtu=$3 addrs=$4 routes=$5 forward4=$6 forward6=$7
conf=$d/$i.conf key=$d/$i.key
[ -d "$d" ] || failed "$d does not exist (the key is generated first)"
t=$(mktemp -d "$d/.skyplan-$i.XXXXXX" 2>"$e") || failed "creating a temporary folder in $d failed" "$e"
tmps="$tmps $t"
cat > "$t/in" 2>"$e" || failed "receiving the config failed" "$e"
[ -f "$key" ] || failed "there is no key file $key (the key is generated first); nothing was changed"
p=$(wg pubkey < "$key" 2>/dev/null) || failed "the key file $key holds no valid WireGuard private key; nothing was changed"
[ "$p" = "$want" ] || failed "the key file $key is not the key of the public key given; nothing was changed"
# The new file is made and checked beside the old one, which stays until the check passed.
awk -v keyfile="$key" "$insert_key" < "$t/in" > "$t/$i.conf" 2>"$e" || failed "putting the private key into $i.conf failed" "$e"
sync "$t/$i.conf" 2>/dev/null
wg-quick strip "$t/$i.conf" > "$t/stripped" 2>"$e" || failed "wg-quick strip of $i.conf failed; nothing was changed" "$e"
grep -qi '^[[:space:]]*\[interface\]' "$t/stripped" && grep -qi '^[[:space:]]*privatekey[[:space:]]*=' "$t/stripped" \
    || failed "wg-quick strip of $i.conf gave no [Interface] section with a PrivateKey; nothing was changed"
[ ! -d "$conf" ] || failed "$conf is a folder; nothing was changed"
mv -f "$t/$i.conf" "$conf" 2>"$e" || failed "writing $conf failed" "$e"
sync "$d" 2>/dev/null
if ip link show dev "$i" >/dev/null 2>&1; then
    wg syncconf "$i" "$t/stripped" 2>"$e" || failed "wg syncconf of $i failed" "$e"
else
    wg-quick up "$i" </dev/null >/dev/null 2>"$e" || failed "wg-quick up $i failed" "$e"
fi
# A transit hub forwards between its spokes. wg-quick up ran the config's PostUp line, which
# does this; wg syncconf runs no PostUp, so the same fixed settings are made here either way.
if [ -n "$forward4" ]; then
    sysctl -q -w net.ipv4.ip_forward=1 2>"$e" || failed "turning on IPv4 forwarding (net.ipv4.ip_forward) failed" "$e"
fi
if [ -n "$forward6" ]; then
    sysctl -q -w net.ipv6.conf.all.forwarding=1 2>"$e" || failed "turning on IPv6 forwarding (net.ipv6.conf.all.forwarding) failed" "$e"
fi
"""
    + _RECONCILE
)

_TEARDOWN = (
    _PRELUDE
    + r"""
i=$1 ours=
# The host, its interface name and its gateway may come from a state that others write: only
# what skyplan made goes. A config someone else wrote (and the key beside it) is left alone, and
# so is an interface that is no WireGuard one (`eth0`) unless skyplan's config names it.
if [ -f "$d/$i.conf" ]; then
    case "$(head -n 1 "$d/$i.conf" 2>/dev/null)" in
    "# Generated by skyplan for cluster "*) ours=1 ;;
    *) failed "$d/$i.conf was not written by skyplan; nothing was changed (remove it by hand if $i is no longer wanted)" ;;
    esac
fi
if ip link show dev "$i" >/dev/null 2>&1; then
    [ -n "$ours" ] || wg show "$i" >/dev/null 2>&1 || failed "$i is not a WireGuard interface; nothing was changed"
    # wg-quick down also undoes what wg-quick up did beyond the link (DNS, firewall marks).
    if ! { [ -n "$ours" ] && wg-quick down "$i" </dev/null >/dev/null 2>"$e"; }; then
        ip link delete dev "$i" 2>"$e" || failed "taking $i down failed" "$e"
    fi
fi
if [ -d "$d" ]; then
    rm -f "$d/$i.conf" "$d/$i.key" 2>"$e" || failed "removing $d/$i.conf and $d/$i.key failed" "$e"
    # Temporary files of a run that was killed: they may hold the key.
    set +f
    rm -rf "$d/.skyplan-$i."* 2>/dev/null
    set -f
    sync "$d" 2>/dev/null
fi
exit 0
"""
)

# The peers' preshared keys, from the running interface, else from the file: a first line that
# says which, then lines of `PEER-PUBLIC-KEY TAB PSK`. The private key is not printed: `wg show <i> preshared-keys`
# prints no private key, and the file's [Interface] section gives no output.
_PRESHARED_KEYS = (
    _PRELUDE
    + _awk("peer_psks", PEER_PSKS_AWK)
    + r"""
i=$1
if ip link show dev "$i" >/dev/null 2>&1 && wg show "$i" >/dev/null 2>&1; then
    echo "preshared-keys live"
    wg show "$i" preshared-keys 2>"$e" || failed "wg show $i preshared-keys failed" "$e"
elif [ -f "$d/$i.conf" ]; then
    echo "preshared-keys file"
    awk "$peer_psks" < "$d/$i.conf" 2>"$e" || failed "reading the preshared keys of $d/$i.conf failed" "$e"
else
    echo "preshared-keys none"
fi
"""
)

# For `skyplan import --gateway`: the running interface's private key into the key file that
# apply expects (`<interface>.key`), made on the host from its config file's PrivateKey, else from
# the running interface itself. The key goes from a file to a file: it is in no argument and in
# no output, and the file is made only if there is none (a hard link, as _ENSURE_KEY does).
_ADOPT_KEY = (
    _PRELUDE
    + _awk("config_key", CONFIG_KEY_AWK)
    + r"""
i=$1 want=$2 k=$d/$i.key
if [ -e "$k" ] || [ -L "$k" ]; then
    p=$(wg pubkey < "$k" 2>/dev/null) || failed "the key file $k holds no valid WireGuard private key; nothing was changed"
    [ "$p" = "$want" ] || failed "the key file $k is not the key of the running interface $i; nothing was changed"
    printf 'kept %s\n' "$p"
    exit 0
fi
[ -d "$d" ] || mkdir -m 700 "$d" 2>"$e" || failed "creating $d failed" "$e"
t=$(mktemp "$d/.skyplan-$i.key.XXXXXX" 2>"$e") || failed "creating a file in $d failed" "$e"
tmps="$tmps $t"
p=
if [ -f "$d/$i.conf" ] && awk "$config_key" < "$d/$i.conf" > "$t" 2>/dev/null; then
    p=$(wg pubkey < "$t" 2>/dev/null) || p=
fi
if [ "$p" != "$want" ]; then
    wg show "$i" private-key > "$t" 2>/dev/null || : > "$t"
    p=$(wg pubkey < "$t" 2>/dev/null) || p=
fi
[ -n "$p" ] && [ "$p" = "$want" ] || failed "neither $d/$i.conf nor the running interface $i gave the private key of the interface's public key; nothing was changed"
sync "$t" 2>/dev/null
ln "$t" "$k" 2>"$e" || failed "creating $k failed" "$e"
sync "$d" 2>/dev/null
printf 'copied %s\n' "$p"
"""
)

_DUMP = (
    _PRELUDE
    + _awk("mask_dump", MASK_DUMP_AWK)
    + r"""
i=$1
ip link show dev "$i" >/dev/null 2>&1 || failed "wg show $i dump failed: interface $i does not exist"
out=$(wg show "$i" dump 2>"$e") || failed "wg show $i dump failed" "$e"
printf '%s\n' "$out" | awk "$mask_dump"
"""
)


# -- the calls --------------------------------------------------------------------------------------------


def inspect(conns: Connections, gateway: Gateway, interface: str, *, salt: str | None = None) -> LiveInterface:
    """What the gateway has: key file, config file and the running interface, secrets removed there.

    Works whatever state the gateway is in: no files, a garbled key, the interface down. With
    `salt` (hex), each running preshared key comes back as `psk_digest(salt, key)` only: the
    same salt for every gateway of one refresh tells whether the ends of a peering agree.
    """
    _check_interface(gateway, interface)
    if salt is not None and not _SALT.fullmatch(salt):
        raise GatewayRequestError(gateway.address, "the salt is not 32 to 64 hex digits")
    boundary = "@@skyplan-" + secrets.token_hex(12)  # a line no file can be expected to hold
    result = _run(conns, gateway, "inspecting " + interface, _INSPECT, [interface, boundary, salt or ""])
    try:
        return parse_inspection(result.stdout.decode("utf-8", errors="replace"), boundary, interface)
    except ValueError as exc:  # e.g. the connection ended mid-way: no reading rather than a wrong one
        raise RemoteCommandError(gateway.address, f"inspecting {interface}: {_one_line(str(exc))}", _masked(result)) from None


def ensure_key(conns: Connections, gateway: Gateway, interface: str, *, replacing: str | None = None) -> str:
    """The public key of the gateway's key, generated there only if there is none, or if the one
    there has public key `replacing`. A retry finds the key the first run made.

    A key file that holds no valid key is an error (nothing changed), unless `replacing` is
    given: a replace discards the old key anyway, and a file that is no key is no one's key.
    """
    _check_interface(gateway, interface)
    if replacing is not None:
        _check_public_key(gateway, replacing, "the key to replace")
    result = _run(conns, gateway, f"making the key of {interface}", _ENSURE_KEY, [interface, replacing or ""])
    public = result.stdout.decode("ascii", errors="replace").strip()
    if not keys.is_canonical(public):
        raise RemoteCommandError(gateway.address, f"the key of {interface} gave no valid public key", _masked(result))
    return public


def adopt_key(conns: Connections, gateway: Gateway, interface: str, public_key: str) -> bool:
    """Make sure /etc/wireguard/<interface>.key holds the running interface's key (public key
    `public_key`), copying it there on the host when only the config file or the interface has
    it; True if it was copied. Nothing of the key leaves the host."""
    _check_interface(gateway, interface)
    _check_public_key(gateway, public_key, "the running interface's public key")
    result = _run(conns, gateway, f"keeping the key of {interface}", _ADOPT_KEY, [interface, public_key])
    status, _, public = result.stdout.decode("ascii", errors="replace").strip().partition(" ")
    if status not in ("kept", "copied") or public != public_key:
        raise RemoteCommandError(gateway.address, f"keeping the key of {interface} gave no answer", _masked(result))
    return status == "copied"


def push(
    conns: Connections,
    gateway: Gateway,
    interface: str,
    config: str,
    *,
    addresses: Iterable[str],
    mtu: int | None,
    routes: Iterable[str],
    public_key: str,
    forward: Iterable[int] = (),
) -> None:
    """Write `config` (wg-quick text without a PrivateKey line) as /etc/wireguard/<interface>.conf
    with the gateway's key put in there, and make the live interface match it.

    Down: `wg-quick up`. Up: in place, keeping sessions of unchanged peers: a checked strip of
    the new file, `wg syncconf`, then addresses, MTU (when given) and routes (exactly `routes`
    via the interface, besides the kernel's own). Both end with addresses, MTU and routes set
    and a check that the live public key is `public_key`. A key file whose public key is not
    `public_key`, or a config that `wg-quick strip` refuses, changes nothing at all.

    `forward`: the IP versions (4, 6) the host is to forward, a transit hub's; the host's fixed
    sysctl switches for them are turned on (never off: the host may forward for others too).
    The config may hold PresharedKey lines: they travel on stdin like the rest of it.
    """
    _check_interface(gateway, interface)
    _check_public_key(gateway, public_key, "public_key")
    _check_config(gateway, config)
    wanted_addresses = _normalised_addresses(gateway, addresses)
    wanted_routes = _route_words(gateway, routes)
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        raise GatewayRequestError(gateway.address, f"MTU {mtu!r} is not between 68 and 65535")
    versions = set(forward)
    if not versions <= {4, 6}:
        raise GatewayRequestError(gateway.address, f"forwarding of {sorted(versions, key=str)!r} is not IP versions 4 and 6")
    flags = ["1" if 4 in versions else "", "1" if 6 in versions else ""]
    _run(
        conns,
        gateway,
        f"pushing {interface}",
        _PUSH,
        [interface, public_key, "" if mtu is None else str(mtu), " ".join(wanted_addresses), " ".join(wanted_routes), *flags],
        stdin=config.encode("utf-8"),
    )


def teardown(conns: Connections, gateway: Gateway, interface: str) -> None:
    """Interface down if it is up, config and key file removed; nothing there is no error.

    Refused, with nothing changed, when the config there was not written by skyplan, or when
    the interface is not a WireGuard one and no config of skyplan's names it.
    """
    _check_interface(gateway, interface)
    _run(conns, gateway, f"removing {interface}", _TEARDOWN, [interface])


def psk_digest(salt: str, psk: str) -> str:
    """What inspect gives for preshared key `psk` with `salt`: hex SHA-256 of the two, as text."""
    return hashlib.sha256((salt + psk).encode("ascii")).hexdigest()


def new_salt() -> str:
    return secrets.token_hex(16)


_SALT = re.compile(r"[0-9a-f]{32,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def preshared_keys(conns: Connections, gateway: Gateway, interface: str) -> dict[str, str]:
    """The preshared key of each of the interface's peers that has one, by the peer's public key:
    from the running interface, else from the config file; {} when there is neither.

    Secret values: they are for skyplan's memory only (to give a peering's other end the same
    key), never for output, a file or an exception. Anything not shaped as a key is left out.
    """
    _check_interface(gateway, interface)
    result = _run(conns, gateway, f"reading the preshared keys of {interface}", _PRESHARED_KEYS, [interface])
    head, _, rest = result.stdout.decode("ascii", errors="replace").partition("\n")
    if head not in ("preshared-keys live", "preshared-keys file", "preshared-keys none"):
        # e.g. the connection ended first: no answer, rather than "no keys" (which would rotate them)
        raise RemoteCommandError(gateway.address, f"reading the preshared keys of {interface} gave no answer", _masked(result))
    return parse_preshared_keys(rest)


def parse_preshared_keys(text: str) -> dict[str, str]:
    """`PUBLIC TAB PSK` lines (wg show <i> preshared-keys) -> {public: psk}; "(none)" is no key."""
    found = {}
    for line in text.split("\n"):
        public, tab, psk = line.strip().partition("\t")
        if tab and keys.is_canonical(public) and is_preshared_key(psk):
            found[public] = psk
    return found


def dump(conns: Connections, gateway: Gateway, interface: str) -> str:
    """`wg show <interface> dump`, with the private key and preshared keys "(hidden)" on the host."""
    _check_interface(gateway, interface)
    return _run(conns, gateway, f"wg show {interface} dump", _DUMP, [interface]).stdout.decode("utf-8", errors="replace")


# -- parsing what the scripts print -----------------------------------------------------------------------


def parse_inspection(text: str, boundary: str, interface: str = "wgsky0") -> LiveInterface:
    """The inspect script's output: sections that start with a `<boundary> NAME [VALUE...]` line."""
    sections: dict[str, list[str]] = {}
    heads: dict[str, str] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith(boundary + " "):
            name, _, value = line[len(boundary) + 1 :].partition(" ")
            heads[name], current = value, []
            sections[name] = current
        elif current is not None:
            current.append(line)
    if "end" not in heads:
        raise ValueError("the inspection's output is cut short")

    key_public, key_problem = None, None
    key_head = heads.get("key", "none")
    if key_head != "none":
        key_public = _public_or_none(key_head)
        if key_public is None:
            key_problem = f"{WG_DIR}/{interface}.key holds no valid WireGuard private key"
    config_text, config_problem = None, None
    if heads.get("config") == "other":
        config_problem = f"{WG_DIR}/{interface}.conf is not a file"
    if heads.get("config") == "file":
        # awk printed every line of the file with its newline; the next boundary line follows.
        config_text = "".join(line + "\n" for line in sections["config"])
    public_key, listen_port, peers = parse_dump("\n".join(sections.get("dump", [])))
    link = "\n".join(sections.get("link", [])).strip()
    return LiveInterface(
        key_public=key_public,
        key_problem=key_problem,
        config_text=config_text,
        config_key_public=_public_or_none(heads.get("config_key", "none")),
        up=bool(link),
        public_key=public_key,
        listen_port=listen_port,
        peers=peers,
        addresses=parse_addresses("\n".join(sections.get("addresses", []))),
        mtu=_mtu(link),
        routes=tuple(sorted(parse_routes("\n".join(sections.get("routes4", [])), 4) + parse_routes("\n".join(sections.get("routes6", [])), 6))),
        config_problem=config_problem,
        forwarding=_forwarding(heads.get("forwarding", "")),
        psk_digests=_digests(sections.get("psk_digests", [])),
        config_key_lines=tuple(sorted({n for n in (_number(x.strip(), 10**7) for x in sections.get("key_lines", [])) if n})),
    )


def _digests(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        public, _, digest = line.partition("\t")
        if keys.is_canonical(public) and _DIGEST.fullmatch(digest):
            found[public] = digest
    return found


def _forwarding(head: str) -> Forwarding:
    """`V4 V6` as /proc/sys prints them ("1", "0"; "-" where it could not be read)."""
    words = head.split()
    flags = [None if word not in ("0", "1") else word == "1" for word in words[:2]]
    flags += [None] * (2 - len(flags))
    return Forwarding(*flags)


def parse_dump(text: str) -> tuple[str | None, int | None, dict[str, LivePeer]]:
    """(public key, listen port, peers) from a masked `wg show <i> dump`; (None, None, {}) if empty."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return None, None, {}
    head = lines[0].split("\t")
    public_key = _canonical_or_none(head[1]) if len(head) > 1 else None
    listen_port = _number(head[2], 65535) if len(head) > 2 else None
    peers = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) < 8 or not keys.is_canonical(fields[0]):
            continue  # not a peer line of wg(8)'s dump form; nothing to say about it
        key, psk, endpoint, allowed, handshake, _rx, _tx, keepalive = fields[:8]
        peers[key] = LivePeer(
            public_key=key,
            endpoint=endpoint if _ENDPOINT.fullmatch(endpoint) else None,
            allowed_ips=_networks(allowed.split(",")) if allowed != "(none)" else (),
            latest_handshake=_number(handshake, _MAX_SECONDS) or 0,
            persistent_keepalive=_number(keepalive, 65535) or 0,
            has_preshared_key=psk != "(none)",
        )
    return public_key, listen_port, peers


def parse_addresses(text: str) -> tuple[str, ...]:
    """Sorted CIDRs from `ip -o addr show dev <i>`, without IPv6 link-local addresses."""
    found = set()
    for line in text.split("\n"):
        words = line.split()
        family = next((w for w in words[:4] if w in ("inet", "inet6")), None)
        if family is None or words.index(family) + 1 >= len(words):
            continue
        scope = words[words.index("scope") + 1] if "scope" in words[:-1] else None
        if family == "inet6" and scope == "link":
            continue
        address = _parsed(ipaddress.ip_interface, words[words.index(family) + 1])
        if address is not None:
            found.add(str(address))
    return tuple(sorted(found))


def parse_routes(text: str, version: int) -> tuple[str, ...]:
    """Sorted destinations from `ip -4|-6 route show dev <i>`, without the kernel's own routes."""
    found = set()
    for line in text.split("\n"):
        if not line.strip() or line[:1].isspace() or " proto kernel" in line:
            continue
        first = line.split()[0]
        if first in _ROUTE_TYPES:
            continue
        if first == "default":
            first = "0.0.0.0/0" if version == 4 else "::/0"
        network = _parsed(_network, first)
        if network is not None:
            found.add(str(network))
    return tuple(sorted(found))


def _mtu(link: str) -> int | None:
    match = re.search(r"\bmtu ([0-9]+)\b", link)
    return _number(match.group(1), 65535) if match else None


def _networks(texts: Iterable[str]) -> tuple[str, ...]:
    found = set()
    for text in texts:
        network = _parsed(_network, text.strip())
        if network is not None:
            found.add(str(network))
    return tuple(sorted(found))


# What a gateway prints is not trusted: it may be a hostile host. Numbers are ASCII digits in
# range ('²'.isdigit() holds, and int() of 5000 digits raises), and addresses carry no zone:
# ipaddress keeps any text after '%' ("fd00::1%<ESC>[2J/64"), and ip(8) never prints one.
_MAX_SECONDS = 2**63 - 1
# An endpoint as wg(8) prints one: IPv4:port or [IPv6]:port; "(none)" and anything else is None.
_ENDPOINT = re.compile(r"(?:[0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}", re.ASCII)


def _number(text: str, most: int) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return None
    value = int(text)
    return value if value <= most else None


def _network(text: str):
    return ipaddress.ip_network(text, strict=False)


def _parsed(parse, text: str):
    """`parse(text)` (an ipaddress constructor), or None for anything but a plain address."""
    if not text.isascii() or "%" in text or len(text) > 64:
        return None
    try:
        return parse(text)
    except ValueError:
        return None


def _public_or_none(head: str) -> str | None:
    status, _, value = head.partition(" ")
    return _canonical_or_none(value) if status == "ok" else None


def _canonical_or_none(text: str) -> str | None:
    return text if keys.is_canonical(text) else None


# -- checks before anything is sent ------------------------------------------------------------------------


def _check_interface(gateway: Gateway, interface: str) -> None:
    if not isinstance(interface, str) or not _INTERFACE.match(interface):
        raise GatewayRequestError(gateway.address, f"interface name {interface!r} does not match {INTERFACE_PATTERN}")


def _check_public_key(gateway: Gateway, key: str, what: str) -> None:
    if not isinstance(key, str) or not keys.is_canonical(key):
        raise GatewayRequestError(gateway.address, f"{what} is not a WireGuard public key")


def _check_config(gateway: Gateway, config: str) -> None:
    if not isinstance(config, str) or "\0" in config:
        raise GatewayRequestError(gateway.address, "the config is not text")
    has_interface = False
    for line in config.splitlines():
        compact = re.sub(r"\s", "", line.split("#", 1)[0]).lower()
        if compact.startswith("["):
            has_interface = has_interface or compact == "[interface]"
        elif compact.startswith("privatekey="):
            # The gateway puts its own key in; a second PrivateKey line would be the controller's.
            raise GatewayRequestError(gateway.address, "the config holds a PrivateKey line; the gateway adds its own")
    if not has_interface:
        raise GatewayRequestError(gateway.address, "the config has no [Interface] section")


def _normalised_addresses(gateway: Gateway, addresses: Iterable[str]) -> list[str]:
    found = []
    for text in [addresses] if isinstance(addresses, str) else addresses:
        try:
            address = ipaddress.ip_interface(text)
        except (TypeError, ValueError):
            raise GatewayRequestError(gateway.address, f"address {text!r} is not an IP address with a prefix length") from None
        if str(address) not in found:
            found.append(str(address))
    return found


def _route_words(gateway: Gateway, routes: Iterable[str]) -> list[str]:
    """Routes as ip(8) prints them (a host route without its /32 or /128), so the gateway can
    tell by plain comparison which of its routes are wanted."""
    found = []
    for text in [routes] if isinstance(routes, str) else routes:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except (TypeError, ValueError):
            raise GatewayRequestError(gateway.address, f"route {text!r} is not a network in CIDR form") from None
        if network.prefixlen == 0:
            # In the main table it would take the tunnel's own underlay traffic; wg-quick uses
            # policy routing for this, which skyplan does not manage.
            raise GatewayRequestError(gateway.address, f"route {network} (a default route) through the tunnel is not supported")
        word = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        if word not in found:
            found.append(word)
    return found


# -- running -----------------------------------------------------------------------------------------------


def _run(conns: Connections, gateway: Gateway, what: str, script: str, args: list[str], stdin: bytes | None = None) -> Result:
    result = conns.run(gateway, ["sh", "-c", script, "sh", *args], stdin)
    if result.exit_code == 0:
        return result
    masked = _masked(result)
    lines = [line for line in masked.stderr.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if result.exit_code == _STEP_FAILED and lines:
        step, details = lines[0], lines[1:]
    else:
        step, details = f"{what} failed with exit code {result.exit_code}", lines
    # wg-quick prints each command it runs ("[#] ..."); the reason comes after them.
    reasons = [line for line in details if not line.startswith(("[#]", "[!]"))]
    reason = reasons[-1] if reasons else (details[-1] if details else "")
    raise RemoteCommandError(gateway.address, _one_line(step) + (f": {_one_line(reason)}" if reason else ""), masked)


def _masked(result: Result) -> Result:
    """The result to keep in an exception: no stdout, and stderr with key-shaped text masked."""
    return Result(result.exit_code, b"", keys.redact(result.stderr.decode("utf-8", errors="replace")).encode("utf-8"))


def _one_line(text: str, limit: int = 300) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in keys.redact(text).strip())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
