import { MoveRefused } from "../operations/job-moves.js";
import { type MigrateResult, migrate } from "../operations/migrate.js";
import { type ConnectionNames, redisNodesName } from "../store/redis-client.js";
import { commandConnection, commandRedis } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName } from "./operator-session.js";

export interface MigrateOptions {
  readonly toUrl: string;
  readonly toCluster?: boolean;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly by?: string;
}

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
  const { redis, prefix, env } = await commandRedis();
  try {
    const { redis: target } = await commandConnection({
      env: { ...env, REDIS_URL: options.toUrl, REDIS_CLUSTER: options.toCluster ?? false },
      redisSource: "--to-url",
      names: TO_URL,
    });
    try {
      const done = await migrate({
        source: redis,
        target,
        prefix,
        sourceName: redisNodesName(env.REDIS_URL),
        targetName: redisNodesName(options.toUrl),
        ...(options.dryRun && { dryRun: true }),
        by: operatorName(options.by),
        onPart: (part) => {
          if (!options.json) io.err(`${part}…\n`);
        },
      });
      io.out(options.json ? `${JSON.stringify(done)}\n` : renderMigrate(done, options));
      return EXIT.ok;
    } finally {
      target.disconnect();
    }
  } catch (error) {
    if (error instanceof MoveRefused) throw new CommandError(error.message);
    throw error;
  } finally {
    redis.disconnect();
  }
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
