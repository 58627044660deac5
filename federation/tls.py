"""TLS for the API and the agents' endpoints: a private CA, role certificates, SSL contexts.

Roles are told apart by the certificate's name, as Nomad does: a server's certificate names
``server.<region>.federation``, an agent's ``client.<region>.federation``, a CLI user's
``cli.<region>.federation``. Agents call the servers with that server name as the TLS server
name (SNI and verification), whatever address they dial, so a certificate issued by the
same CA to an agent, a CLI user or another region's server is refused. Files holding keys are
written 0600, whatever the umask.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "federation"
DEFAULT_REGION = "global"
ROLES = ("server", "agent", "cli")


def role_name(role: str, region: str) -> str:
    prefix = {"server": "server", "agent": "client", "cli": "cli"}[role]
    return f"{prefix}.{region or DEFAULT_REGION}.{DOMAIN}"


def server_name(region: str) -> str:
    return role_name("server", region)


def agent_name(region: str) -> str:
    return role_name("agent", region)


# -- files with secrets ------------------------------------------------------------------
def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, whatever the umask."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read: created 0600 (never readable, even
    briefly, by others), replaced atomically."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


# -- certificates ------------------------------------------------------------------------
@dataclass(frozen=True)
class Issued:
    cert_path: Path
    key_path: Path


def _key():  # noqa: ANN202 - a cryptography private key
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(out_dir: str | Path, days: int = 1825, common_name: str = "federation CA",
              not_before: datetime.datetime | None = None) -> Issued:
    """A self-signed CA: ``federation-ca.pem`` and ``federation-ca-key.pem`` (0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    issued = Issued(out / "federation-ca.pem", out / "federation-ca-key.pem")
    write_private(issued.key_path, _pem_key(key))
    issued.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def create_cert(role: str, region: str, ca: Issued, out_dir: str | Path, days: int = 365,
                dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
                not_before: datetime.datetime | None = None, name: str | None = None) -> Issued:
    """A certificate for ``role`` (server, agent, cli) in ``region``, signed by ``ca``.

    Servers and agents get ``localhost`` and ``127.0.0.1`` too (plus what is given), and may
    both serve and dial (servers call agents); a CLI certificate is for clients only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    key = _key()
    subject_name = name or role_name(role, region)
    sans: list[x509.GeneralName] = [x509.DNSName(subject_name)]
    if role != "cli":
        sans += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role != "cli":
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{region or DEFAULT_REGION}-{role}-{DOMAIN}"
    issued = Issued(out / f"{stem}.pem", out / f"{stem}-key.pem")
    write_private(issued.key_path, _pem_key(key))
    issued.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


# -- SSL contexts ------------------------------------------------------------------------
def client_context(ca_file: str, cert_file: str | None = None,
                   key_file: str | None = None) -> ssl.SSLContext:
    """Verify the peer against ``ca_file`` only (not the system store); present a client
    certificate when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def server_context(cert_file: str, key_file: str, ca_file: str | None = None,
                   require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context
