"""A TCP relay on a port the test owns, in front of a server it can cut connections to or point elsewhere: a
client keeps one address across forced disconnects and server restarts."""

from __future__ import annotations

import socket
import threading


class TCPRelay:
    """Accepts on 127.0.0.1 (a free port) and pipes each connection to `127.0.0.1:<target_port>`; a connection
    whose target refuses is closed at once (the client sees the server gone). While `answer` holds an HTTP status
    line (e.g. "502 Bad Gateway"), new connections get that answer instead, as a proxy in front of a down server
    gives it."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.answer: str | None = None
        self.accepted = 0  # connections accepted so far
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
            if self.answer is not None:
                threading.Thread(target=self._answer, args=(client, self.answer), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _answer(self, client: socket.socket, status: str) -> None:
        """Read the request's head, answer `status` with a small body, close."""
        client.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536 and (data := client.recv(65536)):
                head += data
            body = f"{status} (test relay)".encode()
            client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                           "Connection: close\r\n\r\n".encode() + body)
        except OSError:
            pass
        finally:
            self._close(client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
                self._lock.notify_all()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until no connection is open (the server ended them, say); False after `timeout` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._open, timeout)

    def cut(self) -> None:
        """Break every open connection, both ways (a network drop the server and the client both see)."""
        with self._lock:
            open_now = list(self._open)
        self._close(*open_now)

    def close(self) -> None:
        """Stop accepting and break every connection."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
        except OSError:
            pass
        self._listener.close()
        self.cut()
        self._thread.join(5)
