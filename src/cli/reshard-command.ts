import { MAX_SHARDS } from "../domain/shard-spec.js";
import { MoveRefused } from "../operations/job-moves.js";
import { type ReshardResult, reshard } from "../operations/reshard.js";
import { commandRedis, refuseIfMoved } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT, numberFlag } from "./io.js";
import { operatorName } from "./operator-session.js";
import { jsonOutput } from "./operator-text.js";

export interface ReshardOptions {
  readonly to: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly by?: string;
}

/**
 * `followups reshard --to N`: changes the deployment's shard count (FOLLOW_UP_SHARDS) with every
 * worker stopped, moving each customer and their purchases to their shard under the new count.
 */
export async function runReshard(options: ReshardOptions, io: CommandIo): Promise<number> {
  const to = numberFlag(
    "--to",
    options.to,
    { min: 1, max: MAX_SHARDS },
    `the new shard count, a whole number from 1 to ${MAX_SHARDS}`,
  );
  const { redis, prefix, env } = await commandRedis();
  await refuseIfMoved(redis, prefix);
  try {
    const done = await reshard({
      redis,
      prefix,
      cluster: env.REDIS_CLUSTER,
      to,
      ...(options.dryRun && { dryRun: true }),
      by: operatorName(options.by),
      onPart: (part) => {
        if (!options.json) io.err(`${part}…\n`);
      },
    });
    io.out(options.json ? jsonOutput(done) : renderReshard(done));
    return EXIT.ok;
  } catch (error) {
    if (error instanceof MoveRefused) throw new CommandError(error.message);
    throw error;
  } finally {
    redis.disconnect();
  }
}

function renderReshard(done: ReshardResult): string {
  if (done.noDeployment)
    return `no deployment under this QUEUE_PREFIX (no worker has run there): ${done.dryRun ? "would record" : "recorded"} ${done.to} shard${done.to === 1 ? "" : "s"} for its first worker; check QUEUE_PREFIX if you expected one\n`;
  if (done.from === done.to)
    return `the deployment has ${done.to} shard${done.to === 1 ? "" : "s"} already: nothing to do\n`;
  if (done.dryRun) {
    const workers = done.workersConnected ?? 0;
    return [
      `would change the shard count from ${done.from} to ${done.to} (nothing changed):`,
      `  ${done.purchasesPlaced} purchases found with their customer's new shard`,
      `  ${done.jobsMoved} follow-up jobs would move to another shard's queue`,
      ...(done.queuesPaused > 0
        ? [
            `  ${done.queuesPaused} follow-ups queue(s) are paused: every new shard's queue would be paused`,
          ]
        : []),
      ...(workers > 0
        ? [
            `  ${workers} worker connection(s) are on the queues now, so these counts are a snapshot;`,
            "  the change itself refuses to run until every worker has stopped",
          ]
        : []),
      "stop every worker, then run it without --dry-run; start the workers with",
      `FOLLOW_UP_SHARDS=${done.to} once it has finished`,
      "",
    ].join("\n");
  }
  return [
    `changed the shard count from ${done.from} to ${done.to}:`,
    `  ${done.purchasesPlaced} purchases placed in their customer's new shard`,
    `  ${done.keysMoved} keys moved, ${done.recordsToShardZero} records of events without a known customer moved to shard 0`,
    `  ${done.jobsMoved} follow-up jobs and ${done.scheduledMoved} scheduled steps moved (${done.scheduledDropped} entries of purchases that are gone dropped)`,
    `  ${done.referencesRewritten} references rewritten, ${done.countsFolded} counts of removed shards added to shard 0's`,
    ...(done.queuesPaused > 0
      ? [
          `  a follow-ups queue was paused: all ${done.queuesPaused} new shards' queues are paused; resume them with your queue tool when they should send`,
        ]
      : []),
    `start the workers with FOLLOW_UP_SHARDS=${done.to}`,
    "",
  ].join("\n");
}
