import type { Redis } from "ioredis";
import type { Logger } from "../logger.js";
import {
  dropConnection,
  isCluster,
  isConnectionLoss,
  type RedisClient,
  watchClient,
} from "../store/redis-client.js";

/** While Redis stays away, its connection errors are summed up in one line this often. */
export const AWAY_SUMMARY_EVERY_MS = 60_000;

/** What logRedisAway gives the queues' and workers' error listeners and the connection. */
export interface RedisAwayLog {
  /**
   * Whether `error` says Redis cannot be reached (a refused or broken connection, a command that
   * could not be sent): handled here, logged or counted. The caller logs any other error.
   */
  handle(error: unknown, source: Readonly<Record<string, string>>): boolean;
  /**
   * Redis holds the connection but has not answered for `waitedMs` (frozen, paused, cut off
   * without the connection breaking): counted as a connection error of an outage, which no
   * connection error would otherwise mark.
   */
  unanswered(waitedMs: number, source: Readonly<Record<string, string>>): void;
  /** Redis answers again: how long it was away is logged, once per outage. */
  back(): void;
}

/**
 * The log of a Redis outage. Every queue and worker holds connections of its own, and each
 * reconnect attempt of each one failed with an error line and its stack: about four lines a
 * second for a worker with one shard, more with several, for as long as Redis was away. Now the
 * first connection error of an outage is logged at error level, the ones after it are counted and
 * summed up in one line a minute (`Redis still unreachable`, with how long and how many), and
 * the outage's end is logged (`Redis reachable again`) when the worker's own connection is
 * ready again. An error a minute or more after the last one (a connection that broke alone, whose
 * end no `ready` marked) begins a new outage, logged in full.
 */
export function logRedisAway(deps: {
  readonly logger: Logger;
  readonly now: () => number;
  readonly everyMs?: number;
}): RedisAwayLog {
  const everyMs = deps.everyMs ?? AWAY_SUMMARY_EVERY_MS;
  let outage:
    | { since: number; loggedAt: number; lastErrorAt: number; errors: number; unlogged: number }
    | undefined;
  const away: RedisAwayLog = {
    handle(error, source) {
      if (!isConnectionLoss(error)) return false;
      note(error, source);
      return true;
    },
    unanswered(waitedMs, source) {
      note(
        new Error(
          `Redis has not answered for ${Math.round(waitedMs / 1000)} s, its connection open (frozen, paused, or cut off)`,
        ),
        source,
        // Away since the PING went unanswered, not since it was found out.
        waitedMs,
      );
    },
    back() {
      if (outage === undefined) return;
      deps.logger.info(
        { awayMs: deps.now() - outage.since, errors: outage.errors },
        "Redis reachable again",
      );
      outage = undefined;
    },
  };
  return away;

  function note(error: unknown, source: Readonly<Record<string, string>>, awayFor = 0): void {
    {
      const now = deps.now();
      if (outage === undefined || now - outage.lastErrorAt >= everyMs) {
        outage = { since: now - awayFor, loggedAt: now, lastErrorAt: now, errors: 1, unlogged: 0 };
        deps.logger.error(
          { err: error, ...source },
          "Redis connection lost: the worker tries again until Redis is back, and sums up the connection errors meanwhile once a minute",
        );
        return;
      }
      outage.errors += 1;
      outage.unlogged += 1;
      outage.lastErrorAt = now;
      if (now - outage.loggedAt >= everyMs) {
        deps.logger.error(
          {
            err: error,
            ...source,
            awayMs: now - outage.since,
            errors: outage.unlogged,
          },
          "Redis still unreachable",
        );
        outage.loggedAt = now;
        outage.unlogged = 0;
      }
    }
  }
}

/** How long a PING to Redis may go unanswered before it is logged as away; how often one is sent. */
export const REDIS_PROBE_MS = 5_000;

/**
 * A Redis that keeps its connections open and answers nothing (frozen, paused, a network that
 * drops packets without closing them) raises no connection error: a PING unanswered for `everyMs`
 * is logged as an outage (`away.unanswered`, then counted each `everyMs`, summed a minute), and
 * the first PING answered after it as Redis back. The PINGs go on a connection of the watch's own
 * (watchClient, like `redis`): on the worker's, a PING waited behind whatever that connection ran
 * before it (a long pipeline, a blocking command) and read a busy connection as Redis frozen. On a
 * cluster every master is PINGed, each on its own node connection: one master unanswered is an
 * outage (it holds some shard's, the input queue's or the global keys, and what needs them waits),
 * logged with the `node` (host:port) that did not answer; Redis is back once every master that
 * went unanswered answers again (or is no longer a master, after a failover) and a PING is
 * answered. While the watch's connection is down (not ready) nothing is sent: the worker's own
 * connections' errors say so. An unanswered PING is only taken as such once the worker has read
 * what came in: an event loop held up longer than `everyMs` (a big batch) fires the timer before
 * it reads the answer waiting on the socket. An answer that is an error (BUSY under a long script,
 * a node dropped by a failover) does not end the outage; the next PING answered does.
 */
export function watchRedisAnswers(deps: {
  /** The worker's connection: the watch opens one like it of its own, closed by stop(). */
  readonly redis: RedisClient;
  readonly away: RedisAwayLog;
  readonly now: () => number;
  readonly everyMs?: number;
}): { stop(): void; readonly connection: RedisClient } {
  const { away, now } = deps;
  const everyMs = deps.everyMs ?? REDIS_PROBE_MS;
  const connection = watchClient(deps.redis, everyMs);
  // Per node (its host:port on a cluster, "" for a single Redis): the PING in flight, if any;
  // the nodes whose unanswered PING is part of an outage not yet ended.
  const inFlight = new Map<string, NodeJS.Timeout>();
  const unanswered = new Set<string>();
  let outage = false;
  const nodes = (): ReadonlyMap<string, Redis> =>
    isCluster(connection)
      ? new Map(
          connection
            .nodes("master")
            .map((node) => [`${node.options.host}:${node.options.port}`, node]),
        )
      : new Map([["", connection]]);
  // A single Redis's connection is up; a cluster node's connection (lazy, and never reconnected:
  // a node lost is dropped and found again) is not closed for good.
  const open = (node: Redis) =>
    isCluster(connection)
      ? node.status !== "end" && node.status !== "close"
      : node.status === "ready";
  const ping = (key: string, node: Redis) => {
    const sent = now();
    let answered = false;
    const waiting = setInterval(() => {
      // After the I/O of this turn of the event loop: an answer read now is not missed.
      setImmediate(() => {
        // A node no longer a master (failed over while frozen) is not waited for: dropped from
        // the cluster's nodes, its connection stays open until ioredis destroys it (2 s later).
        if (answered || inFlight.get(key) !== waiting || !open(node) || nodes().get(key) !== node)
          return;
        unanswered.add(key);
        outage = true;
        away.unanswered(now() - sent, key ? { probe: "PING", node: key } : { probe: "PING" });
      });
    }, everyMs);
    waiting.unref();
    inFlight.set(key, waiting);
    void node
      .ping()
      .then(
        () => {
          answered = true;
          unanswered.delete(key);
          if (!outage || unanswered.size > 0) return;
          outage = false;
          away.back();
        },
        () => {
          answered = true;
        },
      )
      .finally(() => {
        clearInterval(waiting);
        if (inFlight.get(key) === waiting) inFlight.delete(key);
      });
  };
  const send = () => {
    if (connection.status !== "ready") return;
    const masters = nodes();
    // A master no longer (failed over, removed) no longer holds the outage open.
    for (const key of unanswered) if (!masters.has(key)) unanswered.delete(key);
    for (const [key, node] of masters) if (!inFlight.has(key)) ping(key, node);
  };
  const timer = setInterval(send, everyMs);
  timer.unref();
  return {
    connection,
    stop() {
      clearInterval(timer);
      for (const waiting of inFlight.values()) clearInterval(waiting);
      inFlight.clear();
      dropConnection(connection);
    },
  };
}

/**
 * Gives `redis` an error listener of its own for its whole life. BullMQ's queues and workers
 * listen on the connections they are given, but take their listeners off when they close: a
 * connection still reconnecting after that (the worker's own, closed last) had none, and ioredis
 * printed each failed attempt to stderr (`[ioredis] Unhandled error event`), outside the logger.
 * A lost connection goes to `away` (one line per outage); any other error (a refused password on
 * reconnect, which every attempt would repeat) is logged once, and again only when it changes or
 * a summary period has passed.
 */
export function reportConnectionErrors(deps: {
  readonly redis: RedisClient;
  readonly away: RedisAwayLog;
  readonly logger: Logger;
  readonly now: () => number;
  readonly source: Readonly<Record<string, string>>;
  readonly everyMs?: number;
}): void {
  const { redis, away, logger, now, source } = deps;
  const everyMs = deps.everyMs ?? AWAY_SUMMARY_EVERY_MS;
  let last: { message: string; at: number } | undefined;
  redis.on("error", (error: unknown) => {
    if (away.handle(error, source)) return;
    const message = error instanceof Error ? error.message : String(error);
    const at = now();
    if (last && last.message === message && at - last.at < everyMs) return;
    last = { message, at };
    logger.error({ err: error, ...source }, "Redis connection error");
  });
}
