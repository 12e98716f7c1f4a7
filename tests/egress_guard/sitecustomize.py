"""Loaded at interpreter start (via PYTHONPATH) by the no-egress test.

Every socket connect / send to a non-loopback address and every DNS lookup of a
non-loopback name is written to $RAGAPP_EGRESS_LOG and then fails loudly.
"""

import ipaddress
import json
import os
import socket

_LOG = os.environ["RAGAPP_EGRESS_LOG"]
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).split("%")[0].strip("[]")
    if host.lower() in _LOCAL_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _block(kind, target):
    with open(_LOG, "a") as fh:
        fh.write(json.dumps({"kind": kind, "target": repr(target), "pid": os.getpid()}) + "\n")
    raise OSError(f"ragapp egress guard: blocked {kind} to {target!r}")


def _guard_address(kind, original):
    def guarded(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _block(kind, address)
        return original(self, address, *args)

    return guarded


def _guard_lookup(kind, original):
    def guarded(host, *args, **kwargs):
        if not _is_local(host):
            _block(kind, host)
        return original(host, *args, **kwargs)

    return guarded


socket.socket.connect = _guard_address("connect", socket.socket.connect)
socket.socket.connect_ex = _guard_address("connect", socket.socket.connect_ex)
_orig_sendto = socket.socket.sendto


def _sendto(self, data, *args):
    address = args[-1]
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _block("sendto", address)
    return _orig_sendto(self, data, *args)


socket.socket.sendto = _sendto
for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, _name, _guard_lookup(f"dns:{_name}", getattr(socket, _name)))
