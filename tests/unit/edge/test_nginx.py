"""The nginx configuration the project renders (deploy/nginx/ensu.conf.template)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ensu.edge import nginx, tls
from ensu.gateway import stamps
from ensu.pki.service import PkiLayout


def test_workers_never_run_as_root_by_default(tmp_path: Path) -> None:
    """The workers' user defaults to the blobs' owner (they send the
    files on X-Accel-Redirect), except root: then nginx's own default, ``nobody``."""
    if os.getuid() == 0:
        assert nginx.owner_of(tmp_path) == nginx.NOBODY
    else:
        assert nginx.owner_of(tmp_path).split()[0] != "root"


def test_an_owner_without_a_name_falls_back_to_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mounted volume's numeric owner has no name: nginx's default, not a crash."""

    class Stat:
        st_uid, st_gid = 54_321, 54_321

    monkeypatch.setattr(Path, "stat", lambda self, **_: Stat())
    assert nginx.owner_of(tmp_path / "blobs") == nginx.NOBODY


def test_the_template_checks_the_crl_and_offers_the_edges_suites(tmp_path: Path) -> None:
    """R-GW-1 (``ssl_crl``) and RFC 9325 (``ssl_ciphers``, ``ssl_protocols``)."""
    layout = PkiLayout(tmp_path / "pki")
    site = nginx.NginxSite(
        prefix=tmp_path / "nginx",
        listen="127.0.0.1:8443",
        upstreams=["127.0.0.1:8001"],
        pki=layout,
        blob_dir=tmp_path / "blobs",
        user="nobody nogroup",
    )
    lines = {line.strip() for line in nginx.render(site).splitlines()}
    assert f"ssl_crl {layout.crl};" in lines
    assert f"ssl_ciphers {':'.join(tls.TLS12_CIPHERS)};" in lines
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in lines


def test_the_template_sends_the_apps_security_headers_on_nginxs_own_answers(
    tmp_path: Path,
) -> None:
    """The same values as the app's (``ensu.gateway.stamps.SECURITY``), on every answer."""
    text = nginx.TEMPLATE.read_text()
    for name, value in stamps.SECURITY:
        header = name.decode().title()
        quoted = f'"{value.decode()}"' if b" " in value or b"=" in value else value.decode()
        assert text.count(f"add_header {header} {quoted} always;") == 2, header
        assert f"proxy_hide_header {header};" in text
