import { userInfo } from "node:os";
import { Queue } from "bullmq";
import type { RuleSet } from "../domain/rules.js";
import { WebhookSpool } from "../http/webhook-spool.js";
import { quietQueue } from "../operations/job-moves.js";
import {
  createOperatorTools,
  OperatorError,
  type OperatorTools,
} from "../operations/operator-tools.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../queue/names.js";
import {
  markOperatorCommand,
  type OperatorCommandMark,
  type OperatorCommandMarkOptions,
} from "../store/operator-commands.js";
import type { ShortWait } from "../store/replica-wait.js";
import { Shards } from "../store/shards.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandRedis, commandShards } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { terminalText } from "./operator-text.js";

/**
 * Runs an operator command (customer, order, cancel, resend, failed, erase, schedule, report)
 * with the operator tools on the Redis of REDIS_URL and the rules of `configDir` (given to `run`
 * too; or the rules a command loaded already); an OperatorError becomes the command's one-line
 * message (exit 2 for a malformed argument, 1 otherwise).
 */
export async function withOperatorTools<T>(
  config: string | { readonly loaded: RuleSet },
  run: (tools: OperatorTools, rules: RuleSet) => Promise<T>,
  options: {
    /** Told of each protected write fewer replicas than REDIS_WAIT_REPLICAS confirmed. */
    readonly onReplicaShort?: (short: ShortWait) => void;
    /**
     * Where a command that changes steps (cancel, erase) says that a finished purchase could not
     * be trimmed after its change: the change stands (exit as made), as a worker logs its own.
     */
    readonly io?: Pick<CommandIo, "err">;
    /**
     * A command that only reads (customer, order, schedule, report, refused, failed without
     * --retry) takes no mark: it changes nothing a reshard or a move could copy half-way, and
     * works against a Redis it may not write to.
     */
    readonly readOnly?: boolean;
    /** The mark's lifetime and clock, for tests (default 30 s, performance.now). */
    readonly mark?: OperatorCommandMarkOptions;
  } = {},
): Promise<T> {
  const { onReplicaShort, io, readOnly = false } = options;
  const rules = typeof config === "string" ? await loadRulesForCommand(config) : config.loaded;
  const { redis, prefix, env } = await commandRedis();
  // The workers keep the queues' metadata: a command (a read-only one above all) writes none.
  // Quiet: a connection lost mid-command fails the command's own call, said once (cli.ts), where
  // BullMQ would print each queue's error, stack and all.
  const events = quietQueue(
    new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: redis,
      prefix: queuePrefix(prefix, PURCHASE_EVENTS_QUEUE, env.REDIS_CLUSTER),
      skipMetasUpdate: true,
    }),
  );
  // Each shard's follow-ups queue, opened when a command first needs it.
  let followUps: Shards<Queue<FollowUpJobData>> | undefined;
  let mark: OperatorCommandMark | undefined;
  try {
    // Marked before the check for a reshard or a move under way (commandShards), which looks for
    // such marks after marking its own: one of the two refuses.
    if (!readOnly) mark = await markOperatorCommand(redis, prefix, Date.now, options.mark);
    const shards = await commandShards(redis, env);
    followUps = new Shards(shards, (shard) =>
      quietQueue(
        new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
          connection: redis,
          prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, env.REDIS_CLUSTER, shard, shards),
          skipMetasUpdate: true,
        }),
      ),
    );
    const tools = createOperatorTools({
      redis,
      prefix,
      shards,
      rules: () => rules,
      followUps,
      events,
      outboxDir: env.OUTBOX_DIR,
      // The spool of a worker run here with the same settings (each replica has its own).
      webhookSpool: new WebhookSpool(env.WEBHOOK_SPOOL_DIR),
      ...(env.ADDRESS_HASH_SECRET && { addressHashSecret: env.ADDRESS_HASH_SECRET }),
      replicaWait: { replicas: env.REDIS_WAIT_REPLICAS, timeoutMs: env.REDIS_WAIT_TIMEOUT_MS },
      ...(onReplicaShort && { onReplicaShort }),
      ...(io && {
        onTrimFailed: (eventId: string, error: unknown) => trimFailed(io, eventId, error),
      }),
      recordRetentionMs: env.RECORD_RETENTION_DAYS * 86_400_000,
      sendLeaseMs: env.DELIVERY_LEASE_MS,
      now: Date.now,
    });
    const result = await run(tools, rules);
    // A write refused after the mark lapsed that the command let pass (one it tolerates failing)
    // still fails the command: it did not do all it was asked.
    const lapsed = mark?.lapsed();
    if (lapsed) throw lapsed;
    return result;
  } catch (error) {
    // Whatever the refused write became on its way up, the lapse is what the operator must know.
    const lapsed = mark?.lapsed();
    if (lapsed) throw new CommandError(lapsed.message, EXIT.invalid);
    if (error instanceof OperatorError)
      throw new CommandError(error.message, error.kind === "invalid" ? EXIT.usage : EXIT.invalid);
    throw error;
  } finally {
    await mark?.release();
    for (const queue of followUps?.made() ?? []) await queue.close();
    await events.close();
    redis.disconnect();
  }
}

/**
 * A step's change was made, but trimming its finished purchase then failed (a stored purchase
 * that cannot be decoded, Redis away): said by event id and the error's name and code only (a
 * parse error's message may quote the purchase), as a worker logs it.
 */
function trimFailed(io: Pick<CommandIo, "err">, eventId: string, error: unknown): void {
  const name = error instanceof Error ? error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  const why = typeof code === "string" || typeof code === "number" ? `${name} ${code}` : name;
  io.err(
    terminalText(
      `warning: ${eventId}: the change was made, but its finished purchase could not be trimmed (${why}): it stays whole until its record expires\n`,
    ),
  );
}

/** Who the audit trail names for a command: `--by`, else the login name of the shell. */
export function operatorName(by: string | undefined): string {
  const name = by?.trim();
  if (name) return name;
  try {
    return userInfo().username || "cli";
  } catch {
    return "cli";
  }
}
