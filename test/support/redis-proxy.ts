import net from "node:net";

/**
 * A loopback TCP proxy in front of a Redis, for a test that needs Redis to go away at one exact
 * moment: the first command with `marker` in it (a job id of the test's own, say) is held, not
 * forwarded, and `onMarker` runs (the test stops its redis-server there); that command and those
 * sent after it on its connection go nowhere, and the connection closes with its Redis's. Every
 * other command passes through as it came.
 */
export interface RedisProxy {
  /** `redis://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /** Holds the first command carrying `marker` and runs `onMarker`; resolved once it has run. */
  armed(marker: string, onMarker: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export async function startRedisProxy(upstreamPort: number): Promise<RedisProxy> {
  const sockets = new Set<net.Socket>();
  let trap: { marker: Buffer; onMarker: () => Promise<void>; sprung: () => void } | undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    let pending = Buffer.alloc(0);
    let held = false;
    client.on("data", (chunk: Buffer) => {
      if (held) return;
      pending = Buffer.concat([pending, chunk]);
      // Command by command: a client pipelines many in one write.
      for (let end = commandEnd(pending); end > 0; end = commandEnd(pending)) {
        const command = pending.subarray(0, end);
        pending = pending.subarray(end);
        const armed = trap;
        if (armed && command.includes(armed.marker)) {
          trap = undefined;
          held = true;
          void armed.onMarker().finally(armed.sprung);
          return;
        }
        upstream.write(command);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    armed(marker, onMarker) {
      return new Promise<void>((sprung) => {
        trap = { marker: Buffer.from(marker), onMarker, sprung };
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Where the first command in `data` ends (a RESP array of bulk strings, as clients send
 * commands), or 0 while it is incomplete.
 */
function commandEnd(data: Buffer): number {
  const line = (from: number): [string, number] | undefined => {
    const end = data.indexOf("\r\n", from);
    return end < 0 ? undefined : [data.toString("latin1", from, end), end + 2];
  };
  const header = line(0);
  if (!header) return 0;
  if (!header[0].startsWith("*")) throw new Error(`not a command: ${header[0]}`);
  let at = header[1];
  for (let n = Number(header[0].slice(1)); n > 0; n--) {
    const size = line(at);
    if (!size) return 0;
    at = size[1] + Number(size[0].slice(1)) + 2;
    if (at > data.length) return 0;
  }
  return at;
}
