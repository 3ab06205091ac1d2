"""kombu's file-system transport, made safe for several processes: the embedded broker.

The stock ``filesystem://`` transport writes a message file in place (a
consumer listing the folder can pick up a half-written file) and claims a
message by moving it to the system temp folder (a copy across file systems,
so two consumers can both read it). Here a message is written under a
temporary name and renamed into the queue folder, and a consumer claims it
with an atomic ``rename`` inside the broker folder; whoever loses the race
moves on. Everything lives under ``<store>/.broker/``, so processes on one
machine (the app and its embedded worker, or ``rnnvis worker``) share it.

Broker URL ``rnnvisfs://`` (registered when :mod:`workers.celery_app` is
imported), with transport options ``data_folder_in`` = ``data_folder_out``,
``processed_folder`` (claimed messages) and ``control_folder``.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from queue import Empty
from time import monotonic, time_ns

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # Names sort by time (then a random tie-breaker), so a queue is FIFO.
        name = f"{time_ns()}_{uuid.uuid4().hex}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        tmp = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, final)
        except OSError as exc:
            raise ChannelError(f"cannot add a message to {self.data_folder_out!r}: {exc}") from exc

    def _restore_at_beginning(self, message):
        """A rejected message (its worker process was lost) goes back in front of its queue."""
        delivery_info = message.delivery_info
        payload = message.serializable()
        payload["redelivered"] = True
        for queue in self._lookup(delivery_info["exchange"], delivery_info["routing_key"]):
            name = f"0{monotonic():020.6f}_{uuid.uuid4().hex}.{queue}.msg"  # sorts before every time_ns name
            final = os.path.join(self.data_folder_out, name)
            tmp = os.path.join(self.data_folder_out, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, final)

    def _get(self, queue):
        suffix = f".{queue}.msg"
        try:
            names = sorted(n for n in os.listdir(self.data_folder_in) if n.endswith(suffix) and not n.startswith("."))
        except FileNotFoundError:
            raise Empty() from None
        claimed_dir = self.processed_folder
        for name in names:
            if name.partition(".")[2] != suffix[1:]:
                continue
            src = os.path.join(self.data_folder_in, name)
            dst = os.path.join(claimed_dir, f"{name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
            try:
                os.rename(src, dst)  # atomic claim: exactly one consumer wins
            except OSError:
                continue
            try:
                with open(dst, "rb") as f:
                    payload = f.read()
            finally:
                with contextlib.suppress(OSError):
                    os.remove(dst)
            return loads(bytes_to_str(payload))
        raise Empty()

    def _size(self, queue):
        suffix = f".{queue}.msg"
        try:
            return sum(1 for n in os.listdir(self.data_folder_in) if n.endswith(suffix) and not n.startswith("."))
        except FileNotFoundError:
            return 0


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = virtual.BrokerState()
    driver_type = "filesystem"
    driver_name = "rnnvisfs"


def register() -> None:
    TRANSPORT_ALIASES.setdefault("rnnvisfs", "workers.fs_transport:Transport")
