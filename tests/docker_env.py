"""A private Docker engine for tests: its own dockerd, socket, data root and a local image.

``start_engine(root)`` starts ``dockerd`` with everything under ``root`` (socket, data root,
exec root, pid file), without touching the host's firewall or bridges
(``--iptables=false --bridge=none``: containers use host networking), and imports an image
built offline from the static busybox binary (no registry is needed). ``DockerEngine.stop``
stops the daemon and its containers and removes the directory.

It raises ``EngineUnavailable`` with the reason when dockerd truly cannot start here (not
installed, not root, or the daemon exits or never answers); the ``docker_engine`` fixture in
``tests/conftest.py`` turns that into a skip naming the reason.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
IMAGE = "federation-test/busybox:1"
START_TIMEOUT = 60.0


class EngineUnavailable(Exception):
    """dockerd cannot run on this machine; the message says why."""


@dataclass
class DockerEngine:
    root: Path
    host: str  # unix://<root>/docker.sock
    proc: subprocess.Popen[bytes]
    image: str = IMAGE
    log_path: Path = field(default_factory=Path)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def cli(self, *args: str, timeout: float = 60.0, stdin: bytes | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run the Docker CLI against this engine (never raises for a non-zero exit)."""
        done = subprocess.run(["docker", *args], input=stdin, env=self.env(),
                              capture_output=True, timeout=timeout, check=False)
        return subprocess.CompletedProcess(done.args, done.returncode,
                                           done.stdout.decode(errors="replace"),
                                           done.stderr.decode(errors="replace"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            # dockerd stops its containers and its containerd on SIGTERM.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    raise EngineUnavailable("no busybox binary to build the test image from "
                            "(install busybox-static)")


def busybox_rootfs_tar() -> bytes:
    """A root filesystem of the static busybox binary and one link per applet."""
    binary = _busybox()
    listed = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True)
    applets = sorted({a for a in listed.stdout.split() if a and "/" not in a} - {"busybox"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(binary, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def _unmount_under(root: Path) -> None:
    """Unmount what a killed dockerd may have left mounted under ``root``."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            points = [line.split()[1] for line in handle if len(line.split()) > 1]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(str(root))), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def start_engine(root: Path | None = None) -> DockerEngine:
    """Start a private dockerd and import the test image; raise EngineUnavailable if not."""
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.path.exists(p)), None)
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed (apt-get install docker.io)")
    if shutil.which("docker") is None:
        raise EngineUnavailable("the docker CLI is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("dockerd needs root and the tests do not run as root")
    tar = busybox_rootfs_tar()
    # A short path: a unix socket path must stay under 108 bytes.
    root = root or Path(tempfile.mkdtemp(prefix="fed-docker-"))
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    log_path = root / "dockerd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [dockerd, "--host", f"unix://{socket_path}", "--data-root", str(root / "data"),
             "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
             "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--storage-driver=overlay2"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = DockerEngine(root, f"unix://{socket_path}", proc, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            tail = "\n".join(engine.log().splitlines()[-5:])
            engine.stop()
            raise EngineUnavailable(f"dockerd exited with {proc.returncode}: {tail}")
        if socket_path.exists() and engine.cli("version", timeout=10).returncode == 0:
            break
        if time.monotonic() > deadline:
            tail = "\n".join(engine.log().splitlines()[-5:])
            engine.stop()
            raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT:g}s: {tail}")
        time.sleep(0.2)
    imported = engine.cli("import", "--change", 'CMD ["sh"]', "-", IMAGE, stdin=tar)
    if imported.returncode != 0:
        engine.stop()
        raise RuntimeError(f"docker import failed: {imported.stderr}")
    return engine
