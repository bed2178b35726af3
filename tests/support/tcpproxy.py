"""A local TCP proxy that can lose replies: for reproducing a database whose answer never arrives."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    server: socket.socket
    swallowing: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class ReplyLosingProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``lose_replies()`` drops what the server sends on
    every open connection and then cuts them, as a network that fails mid-reply would.

    The server has by then received (and may have committed) whatever the client sent last; the
    client only sees its connection die without an answer.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[_Pair] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, server, client, True), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_server and pair.swallowing.is_set():
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            pair.close()

    def lose_replies(self, for_seconds: float) -> int:
        """Swallow server bytes on every open connection for ``for_seconds``, then cut them all;
        return how many connections were cut."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.swallowing.set()
        threading.Event().wait(for_seconds)
        for pair in pairs:
            pair.close()
        return len(pairs)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.close()
