import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/** Options for a private redis-server started by the tests. */
export interface RedisServerOptions {
  /** Enable the append-only file (for restart/durability tests); default false. */
  appendonly?: boolean;
  /** AOF fsync policy; `always` makes every acknowledged write survive a SIGKILL. Default everysec. */
  appendfsync?: "always" | "everysec" | "no";
  /** Data directory; a fresh temporary directory (removed on stop) when omitted. */
  dir?: string;
  /** Loopback port to listen on; a free one is picked when omitted. */
  port?: number;
  /** More redis-server arguments (e.g. `--cluster-enabled yes`). */
  args?: readonly string[];
}

/** How the process is ended by restart(): graceful SIGTERM (default) or a SIGKILL crash. */
export interface RedisRestartOptions {
  signal?: "SIGTERM" | "SIGKILL";
  /** How long the server stays down before it is started again (an outage); default 0. */
  downMs?: number;
}

/** Handle on a running private redis-server. */
export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
  restart(options?: RedisRestartOptions): Promise<void>;
  /** Kills the server (SIGKILL, a crash) for good: it is not started again. */
  kill(): Promise<void>;
  /**
   * Freezes the server (SIGSTOP), as a machine gone away or cut off by the network: connections
   * stay open, nothing is answered. thaw(), stop() and kill() let it go on.
   */
  freeze(): void;
  thaw(): void;
}

const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const OUTPUT_TAIL_CHARS = 4_000;
const PORT_IN_USE_RETRIES = 5;

const runningChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of runningChildren) child.kill("SIGKILL");
});

/** Starts a private redis-server on 127.0.0.1 and resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const appendonly = options.appendonly ?? false;
  const appendfsync = options.appendfsync ?? "everysec";
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), "followups-redis-")));

  let port = options.port ?? (await findFreePort());
  let child: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      child = await launch(port, dir, appendonly, appendfsync, options.args ?? []);
      break;
    } catch (error) {
      const canRetry = options.port === undefined && attempt < PORT_IN_USE_RETRIES;
      if (!canRetry || !String(error).includes("Address already in use")) {
        if (ownsDir) await rm(dir, { recursive: true, force: true });
        throw error;
      }
      port = await findFreePort();
    }
  }

  let stopped = false;
  const thaw = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGCONT");
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      thaw();
      await terminate(child, "SIGTERM");
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      if (stopped) return;
      stopped = true;
      await terminate(child, "SIGKILL");
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
    freeze() {
      if (stopped) throw new Error("redis-server was stopped");
      child.kill("SIGSTOP");
    },
    thaw,
    async restart(restartOptions: RedisRestartOptions = {}) {
      if (stopped) throw new Error("redis-server was stopped; start a new one instead");
      await terminate(child, restartOptions.signal ?? "SIGTERM");
      if (restartOptions.downMs) await new Promise((r) => setTimeout(r, restartOptions.downMs));
      child = await launch(port, dir, appendonly, appendfsync, options.args ?? []);
    },
  };
}

async function launch(
  port: number,
  dir: string,
  appendonly: boolean,
  appendfsync: string,
  extraArgs: readonly string[],
): Promise<ChildProcess> {
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    appendonly ? "yes" : "no",
    "--appendfsync",
    appendfsync,
    "--dir",
    dir,
    "--daemonize",
    "no",
    "--logfile",
    "",
    "--loglevel",
    "warning",
    ...extraArgs,
  ];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  const exited = new Promise<never>((_, reject) => {
    child.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") {
        reject(
          new Error(
            "redis-server was not found on PATH. Install the Debian package `redis-server` " +
              "(apt-get install redis-server) or set REDIS_URL to a Redis the tests may use.",
          ),
        );
      } else {
        reject(error);
      }
    });
    child.once("exit", (code, signal) => {
      reject(
        new Error(
          `redis-server on port ${port} exited during startup (code ${code}, signal ${signal}):\n${output}`,
        ),
      );
    });
  });
  exited.catch(() => {});

  try {
    await Promise.race([waitForPong(port), exited]);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  runningChildren.add(child);
  child.once("exit", () => runningChildren.delete(child));
  return child;
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Picks a currently free loopback port by binding port 0 and releasing it. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      if (address === null || typeof address === "string") {
        probe.close();
        reject(new Error("could not determine a free port"));
        return;
      }
      probe.close(() => resolve(address.port));
    });
  });
}

async function waitForPong(port: number): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastReply = "no reply";
  while (Date.now() < deadline) {
    lastReply = await pingOnce(port);
    if (lastReply === "+PONG") return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `redis-server on port ${port} did not answer PING within ${STARTUP_TIMEOUT_MS} ms (last: ${lastReply})`,
  );
}

function pingOnce(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    const finish = (result: string) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1_000, () => finish("timeout"));
    socket.once("error", (error) => finish(error.message));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      const lineEnd = reply.indexOf("\r\n");
      if (lineEnd !== -1) finish(reply.slice(0, lineEnd));
    });
  });
}
