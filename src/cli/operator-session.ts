import { userInfo } from "node:os";
import { Queue } from "bullmq";
import type { RuleSet } from "../domain/rules.js";
import { WebhookSpool } from "../http/webhook-spool.js";
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
import type { ShortWait } from "../store/replica-wait.js";
import { Shards } from "../store/shards.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandRedis, commandShards } from "./command-redis.js";
import { CommandError, EXIT } from "./io.js";

/**
 * Runs an operator command (customer, order, cancel, resend, failed, erase, schedule, report)
 * with the operator tools on the Redis of REDIS_URL and the rules of `configDir` (given to `run`
 * too; or the rules a command loaded already); an OperatorError becomes the command's one-line
 * message (exit 2 for a malformed argument, 1 otherwise).
 */
export async function withOperatorTools<T>(
  config: string | { readonly loaded: RuleSet },
  run: (tools: OperatorTools, rules: RuleSet) => Promise<T>,
  /** Told of each protected write fewer replicas than REDIS_WAIT_REPLICAS confirmed. */
  onReplicaShort?: (short: ShortWait) => void,
): Promise<T> {
  const rules = typeof config === "string" ? await loadRulesForCommand(config) : config.loaded;
  const { redis, prefix, env } = await commandRedis();
  // The workers keep the queues' metadata: a command (a read-only one above all) writes none.
  const events = new Queue(PURCHASE_EVENTS_QUEUE, {
    connection: redis,
    prefix: queuePrefix(prefix, PURCHASE_EVENTS_QUEUE, env.REDIS_CLUSTER),
    skipMetasUpdate: true,
  });
  // Each shard's follow-ups queue, opened when a command first needs it.
  let followUps: Shards<Queue<FollowUpJobData>> | undefined;
  try {
    const shards = await commandShards(redis, env);
    followUps = new Shards(
      shards,
      (shard) =>
        new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
          connection: redis,
          prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, env.REDIS_CLUSTER, shard, shards),
          skipMetasUpdate: true,
        }),
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
      recordRetentionMs: env.RECORD_RETENTION_DAYS * 86_400_000,
      sendLeaseMs: env.DELIVERY_LEASE_MS,
      now: Date.now,
    });
    return await run(tools, rules);
  } catch (error) {
    if (error instanceof OperatorError)
      throw new CommandError(error.message, error.kind === "invalid" ? EXIT.usage : EXIT.invalid);
    throw error;
  } finally {
    for (const queue of followUps?.made() ?? []) await queue.close();
    await events.close();
    redis.disconnect();
  }
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
