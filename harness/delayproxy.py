"""A TCP relay that adds a fixed delay in each direction: round-trip latency without netem.

It relays bytes (TLS stays end to end between client and Azurite), so it costs almost no CPU and can
sit in front of 64 parallel connections. Runs its asyncio loop in a background thread.
"""

import asyncio
import threading


class DelayProxy(object):
    def __init__(self, target_port, rtt_ms, target_host="127.0.0.1", host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.one_way = rtt_ms / 2000.0
        self.host = host
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pump(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.one_way:
                    await asyncio.sleep(self.one_way)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(self._pump(creader, swriter), self._pump(sreader, cwriter))

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def rewrite(self, uri):
        scheme, rest = uri.split("://", 1)
        return "%s://%s:%d/%s" % (scheme, self.host, self.port, rest.split("/", 1)[1])

    def start(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        async def _shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(_shutdown(), self._loop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
