"""Sealing secrets for the replicated state: Fernet with a key derived from the cluster secret.

A member cluster's kubeconfig carries credentials; it is sealed by the server that receives
it, before it becomes a command, so the Raft log, the journal and every snapshot hold only
ciphertext. Every master derives the same key from the cluster secret (``--secret-file``) and
can unseal it; a snapshot restored into a cluster with another secret cannot.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from federation.errors import FederationError


class SealBroken(FederationError):
    code = "seal_broken"
    http_status = 500


class Sealer:
    def __init__(self, cluster_secret: str) -> None:
        digest = hashlib.sha256(b"federation-sealed-secret:" + cluster_secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, clear: str) -> str:
        return self._fernet.encrypt(clear.encode()).decode("ascii")

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError, UnicodeError):
            raise SealBroken("the sealed secret cannot be opened with this cluster's secret "
                             "(restored from another cluster?): add the cluster again") from None
