import type { FastifyInstance } from "fastify";
import type { Logger } from "./logger.js";
import { dropConnection, type RedisClient } from "./store/redis-client.js";

/** Part of SHUTDOWN_TIMEOUT_MS kept for closing queues and connections after in-flight jobs. */
const CLOSE_RESERVE_MS = 1_000;

/** What the worker closes, in order. */
export interface ClosingParts {
  readonly watcher: { close(): void } | undefined;
  /** The webhook spool's replay: stopped first, so it starts nothing new on closing connections. */
  readonly spoolReplay?: { stop(): Promise<void> };
  readonly http: FastifyInstance | undefined;
  /** The main connection: whether Redis is there decides how long jobs are waited for. */
  readonly redis: RedisClient;
  /** Every connection, dropped when quitting them takes too long. */
  readonly connections: readonly RedisClient[];
  closeWorkers(force?: boolean): Promise<unknown>;
  closeConnections(): Promise<unknown>;
  readonly channels: readonly { close(): Promise<void> }[];
  /** Traces, flushed last: the spans of the jobs that just ended go out too. */
  readonly tracing?: { shutdown(): Promise<void> };
}

/**
 * Closes the worker within `timeoutMs` (SHUTDOWN_TIMEOUT_MS). Every step is bounded by what is
 * left of it: with Redis away, closing a worker or quitting a connection waits for Redis forever.
 * What has not finished when the time is up is cut off: connections are dropped (disconnect),
 * which ends the process.
 */
export async function closeWithin(
  timeoutMs: number,
  logger: Logger,
  parts: ClosingParts,
): Promise<void> {
  const { watcher, http, redis, connections, closeWorkers, closeConnections, channels } = parts;
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  const left = (reserveMs = 0) => Math.max(0, deadline - reserveMs - Date.now());
  const reserveMs = Math.min(CLOSE_RESERVE_MS, timeoutMs / 4);
  watcher?.close();
  // A file being replayed finishes (bounded: its handling fails fast without Redis); no next one.
  const replayStopped = parts.spoolReplay
    ? settlesWithin(parts.spoolReplay.stop(), left(reserveMs))
    : true;
  // Stops listening at once; requests in flight finish while the workers stop.
  const httpClosed = http ? settlesWithin(http.close(), left(reserveMs)) : true;
  // Jobs in flight may finish while Redis is up; with Redis away (or once it goes) they
  // cannot record their outcome, so they are cut off (their locks run out, another worker
  // retries them). Forced from the start when Redis is already away: BullMQ ignores a
  // force once a graceful close has begun.
  let outcome: "drained" | "redis lost" | "timed out" = "redis lost";
  if (redis.status === "ready") {
    let onRedisClose = () => {};
    const redisLost = new Promise<"redis lost">((resolve) => {
      onRedisClose = () => resolve("redis lost");
      redis.once("close", onRedisClose);
    });
    const drained = closeWorkers().then(
      () => "drained" as const,
      () => "drained" as const,
    );
    outcome = await firstWithin([drained, redisLost], left(reserveMs), "timed out");
    redis.off("close", onRedisClose);
  }
  if (outcome !== "drained") {
    logger.warn(
      { waitedMs: Date.now() - startedAt, redis: redis.status },
      outcome === "timed out"
        ? "in-flight jobs did not finish in time; forcing close"
        : "Redis is unreachable; not waiting for in-flight jobs",
    );
    // With Redis away, what waits on a command (the promoters, the sweeps, a job's last write)
    // would wait for Redis until the time is up: the connections that are not up are dropped now,
    // which fails their commands ("Connection is closed"), and the loops and workers stop. Nothing
    // they held could have been written anyway; a job cut off is retried by another worker.
    if (redis.status !== "ready") dropUnready(connections);
    // BullMQ keeps waiting for the jobs if a graceful close began: half the reserve at most.
    if (!(await settlesWithin(closeWorkers(true), left(reserveMs / 2))))
      logger.warn(
        { redis: redis.status },
        "workers and background rounds did not stop in time; leaving them",
      );
  }
  if (http && !(await httpClosed)) {
    // A request waiting on Redis (a webhook) would hold its socket, and the process, open.
    logger.warn("HTTP requests did not finish in time; closing their connections");
    http.server.closeAllConnections();
  }
  if (!(await replayStopped)) logger.warn("the webhook spool's replay did not stop in time");
  if (!(await settlesWithin(closeConnections(), left()))) {
    logger.warn(
      { timeoutMs: timeoutMs, redis: redis.status },
      "Redis did not answer in time; dropping its connections",
    );
    for (const connection of connections) connection.disconnect();
  }
  const channelsClosed = Promise.all(channels.map((c) => c.close()));
  const tracesSent = parts.tracing?.shutdown();
  if (!(await settlesWithin(channelsClosed, left())))
    logger.warn("channels did not close in time; leaving them");
  if (tracesSent && !(await settlesWithin(tracesSent, left())))
    logger.warn("traces were not all sent in time; leaving them");
  logger.info({ ms: Date.now() - startedAt }, "followups worker stopped");
}

/** Drops each of `connections` that is not ready (reconnecting, connecting, or closed). */
function dropUnready(connections: readonly RedisClient[]): void {
  for (const connection of connections)
    if (connection.status !== "ready") dropConnection(connection);
}

/** The first of `outcomes` to resolve, or `fallback` after `ms`; the others go on. */
export async function firstWithin<T, F>(
  outcomes: Promise<T>[],
  ms: number,
  fallback: F,
): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(resolve, ms, fallback);
  });
  try {
    return await Promise.race([...outcomes, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `work` settles (either way) within `ms`; if not, it goes on in the background. */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = work.then(
    () => true,
    () => true,
  );
  return firstWithin([settled], ms, false);
}
