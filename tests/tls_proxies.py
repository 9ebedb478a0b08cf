"""Real TLS terminators for the secure-connectivity tests: stunnel (TCP) and nginx (HTTP).

None of the embedded services speaks TLS or checks credentials the way production does, so
the tests put Debian's own servers in front of them (``.ci/run`` installs ``stunnel4`` and
``nginx-light``): stunnel terminates TLS for the Tansu broker, optionally requiring a client
certificate (mutual TLS); nginx terminates TLS for noida-db (Elasticsearch API) and Chroma and
checks the credential (basic auth, an ``ApiKey`` or a ``Bearer`` token) before proxying, as a
secured Elasticsearch or an authenticating gateway would. Each is a ``devstack.Service``.
"""

from __future__ import annotations

import base64
import shutil
import socket
from pathlib import Path

import pytest

from ragstream.devstack import Service, free_port

__all__ = ["basic_htpasswd", "start_nginx", "start_stunnel"]

_HOST = "127.0.0.1"
_UNAUTHENTICATED = '{"error":{"type":"security_exception","reason":"unauthenticated"},"status":401}'


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (
            f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
        )
        if found:
            return found
    pytest.fail(f"{names[0]} is missing: apt-get install -y {names[0]} (.ci/run installs it)")


def _accepts(service: Service) -> bool:
    with socket.create_connection((_HOST, service.port), timeout=0.5):
        return True


def start_stunnel(
    *,
    backend_port: int,
    cert_pem: Path,
    data_dir: Path,
    client_ca: Path | None = None,
    port: int | None = None,
    name: str = "stunnel",
) -> Service:
    """TLS on ``port`` (default: a free one) to plaintext ``backend_port``; ``client_ca``: mTLS."""
    binary = _tool("stunnel4", "stunnel")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    lines = [
        "foreground = yes",
        "pid =",
        "debug = notice",
        "syslog = no",
        f"[{name}]",
        f"accept = {_HOST}:{port}",
        f"connect = {_HOST}:{backend_port}",
        f"cert = {cert_pem}",
    ]
    if client_ca is not None:
        lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
    conf = data_dir / f"{name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    service = Service(
        name=name, argv=[binary, str(conf)], port=port, data_dir=data_dir, probe=_accepts
    )
    return service.start()


def basic_htpasswd(username: str, password: str) -> str:
    """An htpasswd line (``{SHA}``, which nginx accepts) for basic auth."""
    import hashlib

    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    return f"{username}:{{SHA}}{digest}\n"


def start_nginx(
    *,
    backend_port: int,
    cert: Path,
    key: Path,
    data_dir: Path,
    allowed_authorization: list[str],
    port: int | None = None,
    name: str = "nginx",
) -> Service:
    """HTTPS on ``port`` proxying to ``backend_port`` when ``Authorization`` is one allowed.

    A request with any other ``Authorization`` (or none) gets 401, as a secured server would.
    """
    binary = _tool("nginx")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    allowed = "\n".join(f'        "{value}" 1;' for value in allowed_authorization)
    conf = data_dir / f"{name}.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {data_dir}/{name}.pid;
error_log {data_dir}/{name}.error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log {data_dir}/{name}.access.log;
    client_body_temp_path {data_dir}/body;
    proxy_temp_path {data_dir}/proxy;
    fastcgi_temp_path {data_dir}/fastcgi;
    uwsgi_temp_path {data_dir}/uwsgi;
    scgi_temp_path {data_dir}/scgi;
    client_max_body_size 64m;
    map $http_authorization $authorized {{
        default 0;
{allowed}
    }}
    server {{
        listen {_HOST}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            if ($authorized = 0) {{
                add_header WWW-Authenticate 'Basic realm="security" charset="UTF-8"' always;
                return 401 '{_UNAUTHENTICATED}';
            }}
            proxy_pass http://{_HOST}:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 300s;
        }}
    }}
}}
"""
    )
    service = Service(
        name=name,
        argv=[binary, "-c", str(conf), "-p", str(data_dir), "-e", str(data_dir / f"{name}.stderr")],
        port=port,
        data_dir=data_dir,
        probe=_accepts,
    )
    return service.start()
