"""``[core] hostname_callable`` for a deployment whose workers share one machine.

On separate machines Airflow's default (the FQDN) tells workers apart; here every
worker runs on the same host, so each one is started with its own
``SANITIZER_IT_HOSTNAME`` and the task instances it runs carry that name.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("SANITIZER_IT_HOSTNAME") or socket.getfqdn()
