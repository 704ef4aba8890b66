"""A TCP proxy in front of the cluster's socket that counts the round trips clients make: the
messages after which a client waits for the server (Query in the simple protocol, Sync in the
extended one). Counting messages, not network reads, keeps the count exact whatever the timing."""

from __future__ import annotations

import asyncio
import os
import struct
import threading

# Requests sent before the startup message, without a type byte: SSLRequest, GSSENCRequest.
_NEGOTIATION_CODES = {80877103, 80877104}


class RoundTripCounter:
    def __init__(self) -> None:
        self.socket_path = os.path.join(os.environ["PGHOST"], f".s.PGSQL.{os.environ['PGPORT']}")
        self.round_trips = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "RoundTripCounter":
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_unix_connection(self.socket_path)

        async def from_client() -> None:
            started = False
            try:
                while True:
                    if not started:  # untyped: a negotiation request or the startup message
                        header = await client_reader.readexactly(8)
                        length, code = struct.unpack("!ii", header)
                        body = await client_reader.readexactly(length - 8)
                        started = code not in _NEGOTIATION_CODES
                        server_writer.write(header + body)
                        await server_writer.drain()
                        continue
                    header = await client_reader.readexactly(5)
                    kind, length = header[:1], struct.unpack("!i", header[1:])[0]
                    body = await client_reader.readexactly(length - 4)
                    if kind in (b"Q", b"S"):
                        self.round_trips += 1
                    server_writer.write(header + body)
                    await server_writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                server_writer.close()

        async def from_server() -> None:
            try:
                while data := await server_reader.read(65536):
                    client_writer.write(data)
                    await client_writer.drain()
            except ConnectionError:
                pass
            finally:
                client_writer.close()

        await asyncio.gather(from_client(), from_server(), return_exceptions=True)
