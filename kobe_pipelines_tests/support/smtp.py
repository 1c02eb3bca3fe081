"""A real SMTP server on loopback for tests (aiosmtpd, STARTTLS with a throw-away CA, AUTH)."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kobe_pipelines.alerts import AlertSettings

SMTP_USER = "robot"
SMTP_PASSWORD = "Tr0ub4dor-&-3-horse"
ALERT_FROM = "KOBE Robot <robot@kobe.test>"
ALERT_TO = ("ops@kobe.test", "risk@kobe.test")


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def make_tls_files(folder: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KOBE test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return files




@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    tls: bool
    login: bytes | None


@dataclass
class RecordingHandler:
    """Keeps what arrives; `refuse`, when set, is the reply given to DATA instead of 250."""

    received: list[Received] = field(default_factory=list)
    refuse: str | None = None
    refused: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):
        if self.refuse is not None:
            self.refused += 1
            return self.refuse
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                      session.ssl is not None, session.login_data))
        self.arrived.set()
        return "250 OK"


class _LoopbackController(Controller):
    """aiosmtpd's Controller bound to an ephemeral port: it learns the port before its self-test."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    cafile: Path

    def settings(self, **overrides) -> AlertSettings:
        values = dict(smtp_host=self.host, smtp_port=self.port, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD,
                      alert_from=ALERT_FROM, alert_to=ALERT_TO, starttls=True, timeout_seconds=5.0,
                      group_seconds=300.0, cafile=str(self.cafile))
        values.update(overrides)
        return AlertSettings(**values)


def authenticator(echo_password: bool):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
                and auth_data.password == SMTP_PASSWORD.encode()):
            return AuthResult(success=True, auth_data=auth_data)
        if echo_password and isinstance(auth_data, LoginPassword):
            # A careless server quoting the credentials back: the alerter must not repeat them.
            return AuthResult(success=False, handled=False,
                              message=f"535 5.7.8 bad password {auth_data.password.decode()}")
        return AuthResult(success=False, handled=False)
    return authenticate


def start_smtp(tls_files: TlsFiles, *, tls: bool = True, echo_password: bool = False) -> tuple[Controller, SmtpServer]:
    handler = RecordingHandler()
    kwargs = dict(authenticator=authenticator(echo_password), auth_require_tls=tls)
    if tls:
        kwargs.update(tls_context=tls_files.server_context(), require_starttls=True)
    controller = _LoopbackController(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return controller, SmtpServer("127.0.0.1", controller.port, handler, tls_files.ca_cert)


