import { MoveRefused } from "../operations/job-moves.js";
import { type MigrateResult, migrate } from "../operations/migrate.js";
import {
  type ConnectionNames,
  isRedisUnavailable,
  isWriteRefusal,
  type RedisClient,
  redisNodesName,
} from "../store/redis-client.js";
import { commandConnection, commandRedis } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName } from "./operator-session.js";
import { jsonOutput } from "./operator-text.js";

export interface MigrateOptions {
  readonly toUrl: string;
  readonly toCluster?: boolean;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly by?: string;
  /**
   * How long either Redis may take to answer a call before the run stops, naming it (not a flag:
   * tests shorten it). Default MIGRATE_ANSWER_MS.
   */
  readonly answerWithinMs?: number;
}

/**
 * How long either Redis may leave a call of the move unanswered: then it is taken as lost and the
 * run stops, saying which, instead of waiting for ever (a Redis whose machine went away, or cut
 * off by the network, holds the connection open and answers nothing). Long enough for a RESTORE
 * of the store's largest keys on a busy Redis.
 */
export const MIGRATE_ANSWER_MS = 30_000;

/**
 * `followups migrate --to-url URL [--to-cluster]`: copies the deployment at REDIS_URL to another
 * Redis (a Redis Cluster, typically) with every worker stopped; workers then start against the new
 * one and refuse the old one.
 */
export async function runMigrate(options: MigrateOptions, io: CommandIo): Promise<number> {
  const expected =
    "expected the new Redis's URL, such as redis://host:6379 (a cluster's nodes comma-separated, with --to-cluster)";
  if (!options.toUrl?.trim()) throw new CommandError(`--to-url: ${expected}`, EXIT.usage);
  for (const part of options.toUrl.split(",")) {
    // Never echoed: a URL may carry a password.
    if (!URL.canParse(part.trim()) || !/^rediss?:$/.test(new URL(part.trim()).protocol))
      throw new CommandError(`--to-url: ${expected}; got a value that is not one`, EXIT.usage);
  }
  if (options.toUrl.includes(",") && !options.toCluster)
    throw new CommandError(
      "--to-url: several URLs are the nodes of a Redis Cluster: add --to-cluster",
      EXIT.usage,
    );
  const bounded = { answerWithinMs: options.answerWithinMs ?? MIGRATE_ANSWER_MS };
  const { redis, prefix, env } = await commandRedis(bounded);
  const sourceName = redisNodesName(env.REDIS_URL);
  const targetName = redisNodesName(options.toUrl);
  let target: RedisClient | undefined;
  let part: string | undefined;
  try {
    ({ redis: target } = await commandConnection(
      {
        env: { ...env, REDIS_URL: options.toUrl, REDIS_CLUSTER: options.toCluster ?? false },
        redisSource: "--to-url",
        names: TO_URL,
      },
      bounded,
    ));
    const done = await migrate({
      source: redis,
      target,
      prefix,
      sourceName,
      targetName,
      ...(options.dryRun && { dryRun: true }),
      by: operatorName(options.by),
      onPart: (started) => {
        part = started;
        if (!options.json) io.err(`${started}…\n`);
      },
    });
    io.out(options.json ? jsonOutput(done) : renderMigrate(done, options));
    return EXIT.ok;
  } catch (error) {
    if (error instanceof MoveRefused) throw new CommandError(error.message);
    if (target && isRedisUnavailable(error) && !isWriteRefusal(error)) {
      const lost = await lostRedis([
        { redis, name: `the old Redis (${sourceName})` },
        { redis: target, name: `the new Redis (${targetName})` },
      ]);
      if (lost)
        throw new CommandError(
          `followups migrate stopped ${part ? `while ${part}` : "before copying anything"}: ${lost} stopped answering (${(error as Error).message}). ` +
            "What it copied stays, and is not copied twice: run the same command again once it answers, and it finishes the move",
        );
    }
    throw error;
  } finally {
    target?.disconnect();
    redis.disconnect();
  }
}

/** How long a Redis has to answer a PING after a call of the move failed. */
const PING_MS = 2_000;

/** The first of these Redis deployments that does not answer a PING in time, by name. */
async function lostRedis(
  sides: readonly { readonly redis: RedisClient; readonly name: string }[],
): Promise<string | undefined> {
  const answers = await Promise.all(
    sides.map(async ({ redis }) => {
      if (redis.status !== "ready") return false;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<false>((resolve) => {
        timer = setTimeout(resolve, PING_MS, false);
      });
      try {
        return await Promise.race([
          redis.ping().then(
            () => true,
            () => false,
          ),
          late,
        ]);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return sides.find((_, i) => !answers[i])?.name;
}

/** The new Redis's settings are this command's flags. */
const TO_URL: ConnectionNames = {
  url: "--to-url",
  cluster: "--to-cluster",
  turnOn: "add --to-cluster",
  turnOff: "leave out --to-cluster",
};

function renderMigrate(done: MigrateResult, options: MigrateOptions): string {
  const cluster = options.toCluster ? " REDIS_CLUSTER=true" : "";
  if (done.lateEvents !== undefined)
    return [
      `this deployment moved to ${done.to} before; ${done.lateEvents} event(s) published to the old Redis since were copied there`,
      "point every publisher at the new Redis",
      "",
    ].join("\n");
  if (done.dryRun) {
    const workers = done.workersConnected ?? 0;
    return [
      `would copy this deployment (${done.shards} shard${done.shards === 1 ? "" : "s"}) from ${done.from} to ${done.to} (nothing changed):`,
      `  ${done.keysCopied} keys of the store`,
      `  ${done.jobsCopied} waiting or delayed jobs and ${done.failedJobsCopied} failed jobs`,
      ...(done.queuesPaused > 0
        ? [`  ${done.queuesPaused} paused queue(s), which would be paused on the new Redis too`]
        : []),
      ...(workers > 0
        ? [
            `  ${workers} worker connection(s) are on the queues now, so these counts are a snapshot;`,
            "  the move itself refuses to run until every worker has stopped",
          ]
        : []),
      "stop every worker, point publishers at the new Redis, then run it without --dry-run",
      "",
    ].join("\n");
  }
  return [
    `copied this deployment (${done.shards} shard${done.shards === 1 ? "" : "s"}) from ${done.from} to ${done.to}:`,
    `  ${done.keysCopied} keys of the store`,
    `  ${done.jobsCopied} waiting or delayed jobs, and ${done.failedJobsCopied} failed jobs failed again there`,
    ...(done.queuesPaused > 0
      ? [
          `  ${done.queuesPaused} queue(s) paused on the old Redis are paused on the new one too: resume them with your queue tool when they should run`,
        ]
      : []),
    "workers refuse the old Redis from now on; start them with REDIS_URL set to the new one" +
      `${cluster} and FOLLOW_UP_SHARDS=${done.shards}`,
    "",
  ].join("\n");
}
