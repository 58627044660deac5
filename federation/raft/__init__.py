"""The Raft edge: pysyncobj wiring (node), the Raft port (transport, connection) and durable
storage (storage).

Importing pysyncobj replaces ``socket.inet_ntop``, on every OS, with a Windows-only function
(``pysyncobj/win_inet_pton.py``) that raises ``TypeError`` elsewhere; anything in the server
process that formats an IP address with it would fail. The standard one is put back here,
once pysyncobj has been imported.
"""

import _socket
import socket

import pysyncobj.win_inet_pton  # noqa: F401 - import first, so the repair below sticks

socket.inet_ntop = _socket.inet_ntop
