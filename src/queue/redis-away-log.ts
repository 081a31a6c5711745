import type { Logger } from "../logger.js";
import { isConnectionLoss, type RedisClient } from "../store/redis-client.js";

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
 * the first PING answered after it as Redis back. While the connection is down (not ready) its own
 * errors say so. An unanswered PING is only taken as such once the worker has read what came in:
 * an event loop held up longer than `everyMs` (a big batch) fires the timer before it reads the
 * answer waiting on the socket. An answer that is an error (BUSY under a long script, a node
 * dropped by a failover) does not end the outage; the next PING answered does.
 */
export function watchRedisAnswers(deps: {
  readonly redis: RedisClient;
  readonly away: RedisAwayLog;
  readonly now: () => number;
  readonly everyMs?: number;
}): { stop(): void } {
  const { redis, away, now } = deps;
  const everyMs = deps.everyMs ?? REDIS_PROBE_MS;
  // The PING in flight, if any, and whether an unanswered one marked an outage not yet ended.
  let inFlight: NodeJS.Timeout | undefined;
  let marked = false;
  const send = () => {
    if (inFlight !== undefined || redis.status !== "ready") return;
    const sent = now();
    let answered = false;
    const waiting = setInterval(() => {
      // After the I/O of this turn of the event loop: an answer read now is not missed.
      setImmediate(() => {
        if (answered || inFlight !== waiting || redis.status !== "ready") return;
        marked = true;
        away.unanswered(now() - sent, { probe: "PING" });
      });
    }, everyMs);
    waiting.unref();
    inFlight = waiting;
    void redis
      .ping()
      .then(
        () => {
          answered = true;
          if (!marked) return;
          marked = false;
          away.back();
        },
        () => {
          answered = true;
        },
      )
      .finally(() => {
        clearInterval(waiting);
        if (inFlight === waiting) inFlight = undefined;
      });
  };
  const timer = setInterval(send, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      clearInterval(inFlight);
      inFlight = undefined;
    },
  };
}
