import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { Redis } from "ioredis";
import { StartupStopped } from "./startup-error.js";

/**
 * The first five minutes: with REDIS_URL unset and nothing answering on the default address, the
 * worker starts a private `redis-server` from PATH (data and append-only file under `var/redis/`),
 * writes its address to `var/redis/url` for the other commands, and stops it when it stops.
 */

/** Where the embedded Redis keeps its data, and where its address is written. */
export const EMBEDDED_DIR = path.join("var", "redis");
export const EMBEDDED_URL_FILE = path.join(EMBEDDED_DIR, "url");
/** The console token generated for an embedded deployment without ADMIN_TOKENS. */
export const ADMIN_TOKEN_FILE = path.join("var", "admin-token");
const DEFAULT_URL = "redis://127.0.0.1:6379";
const START_TIMEOUT_MS = 10_000;

export interface EmbeddedRedis {
  readonly url: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** Whether a Redis answers PING at the URL within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 500): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/**
 * The Redis for a command when REDIS_URL is unset: the embedded one a running worker started (its
 * address in var/redis/url), else the default address.
 */
export async function defaultRedisUrl(root = "."): Promise<{ url: string; source: string }> {
  try {
    const url = (await readFile(path.join(root, EMBEDDED_URL_FILE), "utf8")).trim();
    if (url && (await redisAnswers(url)))
      return { url, source: `${EMBEDDED_URL_FILE} (the embedded Redis)` };
  } catch {
    // No embedded Redis was started here.
  }
  return { url: DEFAULT_URL, source: "the default address" };
}

/** Why no embedded Redis could be started: a message for the person at the terminal. */
export class NoRedisError extends Error {}

/**
 * Starts `redis-server` from PATH on a free loopback port, its data in `root/var/redis`. Aborted
 * by `stop` (a SIGTERM or SIGINT while the worker starts), it stops the server it started, if any,
 * and rejects with StartupStopped.
 */
export async function startEmbeddedRedis(root = ".", stop?: AbortSignal): Promise<EmbeddedRedis> {
  const dir = path.resolve(root, EMBEDDED_DIR);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  if (stop?.aborted) throw new StartupStopped();
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--save",
      "",
      "--daemonize",
      "no",
      "--logfile",
      "redis.log",
      "--protected-mode",
      "yes",
    ],
    { stdio: "ignore" },
  );
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new NoRedisError(
              `no Redis answers at ${DEFAULT_URL} and there is no redis-server on PATH to start one: install Redis (Debian or Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL`,
            )
          : error,
      ),
    );
    child.once("exit", (code) =>
      reject(
        new NoRedisError(
          `redis-server exited at once (code ${code}); see ${path.join(dir, "redis.log")}`,
        ),
      ),
    );
  });
  failed.catch(() => undefined);
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  const stopped = new Promise<"stopped">((resolve) => {
    if (stop?.aborted) resolve("stopped");
    stop?.addEventListener("abort", () => resolve("stopped"), { once: true });
  });
  for (;;) {
    const answered = await Promise.race([redisAnswers(url, 200), failed, stopped]);
    if (answered === "stopped") {
      await stopChild(child);
      throw new StartupStopped();
    }
    if (answered) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new NoRedisError(`redis-server did not answer within ${START_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await writeFile(path.resolve(root, EMBEDDED_URL_FILE), `${url}\n`);
  let stopping: Promise<void> | undefined;
  return {
    url,
    dir,
    stop() {
      stopping ??= stopChild(child).then(() =>
        rm(path.resolve(root, EMBEDDED_URL_FILE), { force: true }),
      );
      return stopping;
    },
  };
}

/** The console token of an embedded deployment: read from var/admin-token, or made and saved. */
export async function embeddedAdminToken(root = "."): Promise<string> {
  const file = path.resolve(root, ADMIN_TOKEN_FILE);
  try {
    const saved = (await readFile(file, "utf8")).trim();
    if (saved.length >= 16) return saved;
  } catch {
    // Not made yet.
  }
  const token = randomBytes(24).toString("base64url");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // SIGTERM: RedisClient finishes writing its append-only file, then exits.
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        address && typeof address === "object"
          ? resolve(address.port)
          : reject(new Error("no free port")),
      );
    });
  });
}
