import type { RedisOptions } from "ioredis";
import { StartupError, StartupStopped } from "./startup-error.js";
import {
  clusterRefusal,
  connectFailureText,
  connectionMismatch,
  connectWithin,
  createRedisClient,
  dropConnection,
  type RedisClient,
  tellingConnectError,
} from "./store/redis-client.js";

/**
 * Longest wait for one Redis command on behalf of an HTTP client (enqueueing an event, the
 * readiness ping) when Redis accepted the connection but does not answer.
 */
export const HTTP_COMMAND_TIMEOUT_MS = 2_000;

/**
 * How long a worker waits at start for a Redis Cluster to be ready: one in state fail (nodes never
 * joined, a shard without a master) never is, and the worker stops saying why instead of waiting.
 * Longer than a failover (cluster-node-timeout, 15 s by default, and the election).
 */
const STARTUP_CONNECT_MS = 60_000;

/**
 * After how long a worker still waiting for Redis at start says so: one that accepts the
 * connection but does not answer (stopped, overloaded, loading its data) is waited for.
 */
const SLOW_CONNECT_MS = 5_000;

/**
 * A connection for commands (BullMQ's workers get duplicates of it); by default a command waits
 * while Redis is away, as BullMQ requires.
 */
export async function connectRedis(
  url: string,
  cluster: boolean,
  options: RedisOptions = {},
  /** Told once when Redis is not ready after SLOW_CONNECT_MS (a single Redis is waited for). */
  onSlow?: () => void,
  /** A SIGTERM or SIGINT during start-up: the wait ends, the connection is dropped (StartupStopped). */
  stop?: AbortSignal,
): Promise<RedisClient> {
  if (stop?.aborted) throw new StartupStopped();
  const redis = createRedisClient(url, cluster, {
    maxRetriesPerRequest: null,
    ...options,
    lazyConnect: true,
  });
  // A stop while Redis does not answer ends the wait at once (not after ioredis's 2 s).
  const drop = () => dropConnection(redis);
  stop?.addEventListener("abort", drop, { once: true });
  try {
    return await connected(redis, url, cluster, onSlow, stop);
  } catch (error) {
    dropConnection(redis);
    throw stop?.aborted ? new StartupStopped() : error;
  } finally {
    stop?.removeEventListener("abort", drop);
  }
}

/** connectRedis's wait for `redis` to be ready and checks of what answered. */
async function connected(
  redis: RedisClient,
  url: string,
  cluster: boolean,
  onSlow: (() => void) | undefined,
  stop: AbortSignal | undefined,
): Promise<RedisClient> {
  // A failed connect is reported by the rejection below, not as an unhandled error event; the
  // first error says why (ECONNREFUSED …), where the rejection says only "Connection is closed".
  let first: Error | undefined;
  const quiet = (error: Error) => {
    first = tellingConnectError(first, error);
  };
  redis.on("error", quiet);
  // A cluster whose nodes were never joined will not become one by waiting.
  const unjoined = cluster && (await clusterRefusal(url, undefined, false));
  if (unjoined) {
    redis.disconnect();
    throw new StartupError(unjoined);
  }
  const slow = onSlow && setTimeout(onSlow, SLOW_CONNECT_MS);
  try {
    await connectWithin(redis, STARTUP_CONNECT_MS);
    redis.off("error", quiet);
  } catch (error) {
    redis.disconnect();
    if (stop?.aborted) throw new StartupStopped();
    throw new StartupError(
      (cluster && (await clusterRefusal(url))) ||
        `cannot reach Redis at REDIS_URL: ${connectFailureText(first ?? (error as Error), url)}`,
    );
  } finally {
    clearTimeout(slow);
  }
  const mismatch = await connectionMismatch(redis);
  if (mismatch) {
    redis.disconnect();
    throw new StartupError(mismatch);
  }
  return redis;
}

/**
 * The connection HTTP clients are answered from: it never waits for Redis. With no offline
 * queue, a command while Redis is away fails at once (503 with Retry-After) instead of queueing
 * until Redis returns; one in flight when the connection drops fails with it, and one Redis does
 * not answer fails after HTTP_COMMAND_TIMEOUT_MS. The other connections keep
 * maxRetriesPerRequest: null (BullMQ's blocking commands need it): jobs wait for Redis instead.
 */
export async function connectHttpRedis(
  url: string,
  cluster: boolean,
  stop?: AbortSignal,
): Promise<RedisClient> {
  const redis = await connectRedis(
    url,
    cluster,
    {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: HTTP_COMMAND_TIMEOUT_MS,
    },
    undefined,
    stop,
  );
  redis.on("error", () => {
    // Reported by the other connections' listeners (queue and worker errors); nothing to add.
  });
  return redis;
}

/**
 * The connection Twilio's webhooks, unsubscribe links, tills and the webhook spool's replay are
 * handled on: like the jobs' (a command waits while Redis is away; the handlers' failFast bound
 * answers 503, or spools, instead), but of its own. A connection runs its commands one after
 * another, and a job's WAIT for replicas (REDIS_WAIT_REPLICAS) or a slow command holds everything
 * behind it: an incoming STOP would wait for it, be cut off and spooled.
 */
export async function connectWebhookRedis(
  url: string,
  cluster: boolean,
  stop?: AbortSignal,
): Promise<RedisClient> {
  const redis = await connectRedis(url, cluster, {}, undefined, stop);
  redis.on("error", () => {
    // Reported by the other connections' listeners (queue and worker errors); nothing to add.
  });
  return redis;
}
