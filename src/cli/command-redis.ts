import { type Env, readEnv } from "../config/env.js";
import { MAX_SHARDS } from "../domain/shard-spec.js";
import { defaultRedisUrl } from "../embedded-redis.js";
import { olderLayoutRemains } from "../store/key-layout.js";
import {
  boundCommands,
  type ConnectionNames,
  clusterRefusal,
  connectionMismatch,
  connectWithin,
  createRedisClient,
  cutConnectionText,
  ENV_CONNECTION,
  type RedisClient,
  redisNodesName,
  tellingConnectError,
} from "../store/redis-client.js";
import { moveRefusal, startRefusal, storedShardCount } from "../store/shards.js";
import { trackConnection } from "./command-connections.js";
import { CommandError } from "./io.js";

/**
 * The environment of a one-shot command. Without REDIS_URL, a command uses the embedded Redis a
 * worker started here (var/redis/url), else the default address. REDIS_URL set empty is refused,
 * as the worker refuses it, rather than pointed at a Redis nobody chose.
 */
export async function commandEnv(): Promise<{ env: Env; redisSource: string }> {
  let redisSource = "REDIS_URL";
  let raw: NodeJS.ProcessEnv = process.env;
  if (process.env.REDIS_URL === undefined) {
    const found = await defaultRedisUrl();
    raw = { ...process.env, REDIS_URL: found.url };
    redisSource = found.source;
  }
  const env = readEnv(raw);
  if (!env.ok) throw new CommandError(`invalid environment:\n${env.problems.join("\n")}`);
  return { env: env.env, redisSource };
}

/**
 * How long a command waits for Redis to be ready: a Redis Cluster in state fail never is, nor is
 * a Redis that accepts connections but does not answer.
 */
const COMMAND_CONNECT_MS = 10_000;

/**
 * How long a command's Redis command may go unanswered: REDIS_COMMAND_TIMEOUT_MS, but never
 * shorter than a replica wait (WAIT, up to REDIS_WAIT_TIMEOUT_MS) and a second to answer it.
 */
export function commandTimeoutMs(env: Env): number {
  return Math.min(
    2_147_483_647,
    Math.max(env.REDIS_COMMAND_TIMEOUT_MS, env.REDIS_WAIT_TIMEOUT_MS + 1_000),
  );
}

export interface CommandConnectionOptions {
  /**
   * Each call fails ("Command timed out") when Redis has not answered it within this: a Redis
   * that holds the connection open but answers nothing (its machine gone, a network partition)
   * fails the command instead of holding it for ever. Unset: commandTimeoutMs (REDIS_COMMAND_TIMEOUT_MS).
   */
  readonly answerWithinMs?: number;
}

/**
 * A connection to `REDIS_URL` for a one-shot command: connected once, no reconnecting, and a
 * refusal (unreachable, or REDIS_CLUSTER not matching what answers) is one clear line (exit 1),
 * not a stack trace. Once connected, a command Redis leaves unanswered fails after
 * commandTimeoutMs (unansweredText). The caller disconnects it.
 */
export async function commandConnection(
  /** The environment when the command read it already (commandEnv), not read twice. */
  read?: { env: Env; redisSource: string; names?: ConnectionNames },
  options: CommandConnectionOptions = {},
): Promise<{ redis: RedisClient; env: Env }> {
  const { env, redisSource } = read ?? (await commandEnv());
  const names = read?.names ?? ENV_CONNECTION;
  const redis = createRedisClient(env.REDIS_URL, env.REDIS_CLUSTER, {
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  let failure: Error | undefined;
  redis.on("error", (error: Error) => {
    failure = tellingConnectError(failure, error);
  });
  // A cluster whose nodes were never joined will not become one by waiting.
  const unjoined = env.REDIS_CLUSTER && (await clusterRefusal(env.REDIS_URL, names, false));
  if (unjoined) {
    redis.disconnect();
    throw new CommandError(unjoined);
  }
  try {
    await connectWithin(redis, COMMAND_CONNECT_MS, "bounded");
  } catch (error) {
    redis.disconnect();
    const reason = await cutConnectionText(
      failure ?? (error as Error),
      env.REDIS_URL,
      env.REDIS_CLUSTER,
    );
    const refusal = env.REDIS_CLUSTER && (await clusterRefusal(env.REDIS_URL, names));
    if (refusal) throw new CommandError(refusal);
    // The URL itself only without its credentials.
    const where =
      redisSource === "REDIS_URL"
        ? "REDIS_URL"
        : `${redisNodesName(env.REDIS_URL)} (${redisSource})`;
    throw new CommandError(`cannot reach Redis at ${where}: ${reason}`);
  }
  const commandMs = options.answerWithinMs ?? commandTimeoutMs(env);
  boundCommands(redis, commandMs);
  // The URL itself only without its credentials.
  trackConnection(redis, `${redisNodesName(env.REDIS_URL)} (${redisSource})`, commandMs);
  try {
    const mismatch = await connectionMismatch(redis, names);
    if (mismatch) throw new CommandError(mismatch);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return { redis, env };
}

/**
 * The Redis of `REDIS_URL` for a one-shot command that reads or changes the store
 * (commandConnection), refused while the store still has the key layout of an older version.
 */
export async function commandRedis(options: CommandConnectionOptions = {}): Promise<{
  redis: RedisClient;
  prefix: string;
  horizonMs: number;
  env: Env;
}> {
  const { redis, env } = await commandConnection(undefined, options);
  const older = await olderLayoutRemains(redis, env.QUEUE_PREFIX).catch((error: unknown) => {
    redis.disconnect();
    throw error;
  });
  if (older) {
    redis.disconnect();
    throw new CommandError(
      "this Redis holds followups data in an older key layout (versions before 4 December 2026): " +
        "start a worker of this version once, it upgrades the data at start-up, then run the command again",
    );
  }
  return { redis, prefix: env.QUEUE_PREFIX, horizonMs: env.PROMOTE_HORIZON_MS, env };
}

/**
 * Refuses (exit 1, the connection closed) a deployment that moved to another Redis or is still
 * arriving from one (followups migrate): what a command publishes or changes there would be lost.
 */
export async function refuseIfMoved(redis: RedisClient, prefix: string): Promise<void> {
  const refusal = await moveRefusal(redis, prefix);
  if (!refusal) return;
  redis.disconnect();
  throw new CommandError(refusal);
}

/**
 * How many shards the deployment has: the count its first worker recorded in Redis, else
 * FOLLOW_UP_SHARDS. A FOLLOW_UP_SHARDS set to another number than the recorded one is refused: the
 * command would look for customers in other shards than the ones their state lives in.
 */
export async function commandShards(redis: RedisClient, env: Env): Promise<number> {
  const refusal = await startRefusal(redis, env.QUEUE_PREFIX);
  if (refusal) throw new CommandError(refusal);
  const stored = await storedShardCount(redis, env.QUEUE_PREFIX);
  if (stored !== undefined && !(Number.isInteger(stored) && stored >= 1 && stored <= MAX_SHARDS))
    throw new CommandError(
      `this Redis records ${stored} as the deployment's shard count, not a whole number from 1 to ${MAX_SHARDS}`,
    );
  const given = process.env.FOLLOW_UP_SHARDS?.trim() ? env.FOLLOW_UP_SHARDS : undefined;
  if (stored !== undefined && given !== undefined && stored !== given)
    throw new CommandError(
      `FOLLOW_UP_SHARDS is ${given}, but this deployment's Redis records ${stored} shards (set by its first worker): set FOLLOW_UP_SHARDS=${stored} or leave it unset`,
    );
  return stored ?? env.FOLLOW_UP_SHARDS;
}
