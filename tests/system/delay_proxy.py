"""A loopback TCP proxy that holds every client-to-server chunk for a fixed delay.

The kill scenario of the qemu test needs the guest's root to stay frozen long enough for the guest to
see it and SIGKILL the worker mid-freeze; slowing the snapshot requests on the way to Azurite stretches
the frozen window without touching the runtime. TLS passes through untouched (bytes are not read).
"""

import socket
import threading
import time


class DelayProxy(object):
    def __init__(self, upstream_port, delay_s, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.delay_s = delay_s
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, 0))
        self.server.listen(32)
        self.port = self.server.getsockname()[1]
        self.closed = False
        self.connections = 0

    def _pump(self, src, dst, delay):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=10)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            for args in ((client, up, self.delay_s), (up, client, 0)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.closed = True
        self.server.close()
