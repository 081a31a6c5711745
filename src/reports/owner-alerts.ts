import { createHash, randomUUID } from "node:crypto";
import { DelayedError, type Job, type Queue } from "bullmq";
import type { DeliveryChannel } from "../channels/channel.js";
import type { Owner, RuleSet } from "../domain/rules.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import { OWNER_ALERT_JOB } from "../queue/names.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { OwnerAlertQueue } from "../store/owner-alerts.js";
import type { Shards } from "../store/shards.js";
import { parseReplyId, type StepReplies, type StepReply } from "../store/step-replies.js";
import { ALERT_NAMES, type AlertItem, alertEmail } from "./owner-alert-email.js";
import { ownerSchedulerId } from "./owner-reports.js";
import { judgeReply } from "./unhappy-replies.js";

/**
 * Unhappy replies reach the owners of the purchase's store at once: owners with `alerts: true`
 * whose `stores` name the purchase's store (or who name none). The first alert of an owner's
 * window is queued to go within the minute; replies later in the window wait for its end and go
 * together in one email. Failed sends are retried with backoff, as report emails are.
 */

export interface OwnerAlertsDeps {
  readonly rules: () => RuleSet;
  /** Every shard's stores: a reply names the shard of its purchase. */
  readonly shards: Pick<Shards<{ readonly store: Pick<FollowUpStore, "storedPurchase"> }>, "of">;
  readonly alerts: OwnerAlertQueue;
  readonly queue: Queue;
  readonly logger: Logger;
  readonly now: () => number;
}

/** The owners to alert about a purchase of `storeId`. */
export function ownersToAlert(rules: RuleSet, storeId: string | undefined): Owner[] {
  return rules.owners.filter(
    (owner) =>
      owner.alerts &&
      (owner.stores === undefined || (storeId !== undefined && owner.stores.includes(storeId))),
  );
}

/** Called for every reply recorded: files an alert for each owner to tell when it looks unhappy. */
export function createOwnerAlerts(deps: OwnerAlertsDeps) {
  return async (reply: StepReply): Promise<void> => {
    if (!judgeReply(reply.text).unhappy) return;
    const stored = await deps.shards.of(reply.shard).store.storedPurchase(reply.eventId);
    const owners = ownersToAlert(deps.rules(), stored.kept?.store?.id);
    const now = deps.now();
    for (const owner of owners) {
      const ownerId = ownerSchedulerId(owner);
      const { sendAt, bundled } = await deps.alerts.file(
        ownerId,
        reply.id,
        now,
        owner.alertWindow.as("milliseconds"),
      );
      // One job per owner and send time: the replies of a window share the job at its end.
      await deps.queue.add(
        OWNER_ALERT_JOB,
        { owner: ownerId },
        {
          jobId: `alert-${ownerId}-${sendAt}`,
          delay: Math.max(0, sendAt - now),
          attempts: 6,
          backoff: { type: "exponential", delay: 60_000 },
        },
      );
      deps.logger.info({ owner: ownerId, bundled }, "unhappy reply filed for an owner's alert");
    }
  };
}

/** What an alert reads in a purchase's shard: the reply and the purchase it answers. */
export interface AlertShard {
  readonly replies: Pick<StepReplies, "get">;
  readonly store: Pick<FollowUpStore, "storedPurchase">;
}

export interface OwnerAlertProcessorDeps {
  readonly rules: () => RuleSet;
  readonly alerts: OwnerAlertQueue;
  /** Every shard's stores: a pending alert's reply id names the shard of its purchase. */
  readonly shards: Pick<Shards<AlertShard>, "of" | "count">;
  readonly email: Pick<DeliveryChannel, "send">;
  readonly metrics: FollowUpMetrics;
  readonly logger: Logger;
  /** The console's base URL (…/console) when it is on: alerts link to the customer's timeline. */
  readonly consoleUrl?: string;
  /** How long a job holds the owner's alerts while sending (ALERT_LEASE_MS; tests shorten it). */
  readonly leaseMs?: number;
}

/**
 * How long an alert job holds an owner's alerts while it sends them: well beyond an SMTP send's
 * timeouts (connect, greeting and socket: 50 s by default), so that the lease does not run out
 * under a slow send, and short enough that a worker that died holding it delays alerts by minutes.
 */
export const ALERT_LEASE_MS = 180_000;
/** At most this long a job that found another sending the owner's alerts waits to look again. */
const LEASE_RETRY_MAX_MS = 2_000;
/** At least this long, so that a job does not spin while the holder finishes. */
const LEASE_RETRY_MIN_MS = 250;

/**
 * Sends an owner every alert waiting for them in one email; throws on a failed send (retried).
 * Two jobs of one owner may run at once on two workers (a retried job, the job at the window's
 * end): one takes the owner's lease and sends; the other moves itself to look again shortly, and
 * then sends only what was filed after (the sender removes exactly the replies it sent).
 */
export function createOwnerAlertProcessor(deps: OwnerAlertProcessorDeps) {
  const send = async (
    ownerId: string,
    pending: readonly string[],
    job: Job,
  ): Promise<{ outcome: { sent: number } | { skipped: string }; done: readonly string[] }> => {
    const rules = deps.rules();
    const owner = rules.owners.find((o) => ownerSchedulerId(o) === ownerId);
    if (!owner?.alerts)
      return { outcome: { skipped: "owner no longer gets alerts" }, done: pending };
    if (pending.length === 0)
      return { outcome: { skipped: "nothing pending (sent with an earlier alert)" }, done: [] };
    const items: AlertItem[] = [];
    for (const replyId of pending) {
      const item = await alertItem(deps, replyId);
      if (item) items.push(item);
    }
    if (items.length === 0)
      return { outcome: { skipped: "the replies are gone (erased or expired)" }, done: pending };
    const followUpId = `alert-${ownerId}-${createHash("sha256").update(pending.join("\n")).digest("hex").slice(0, 12)}`;
    const result = await deps.email.send(alertEmail(owner, rules.shopName, items, followUpId));
    if (!result.ok) {
      deps.metrics.alertsFailed.inc();
      deps.logger.warn(
        { owner: ownerId, code: result.error.code, attempt: job.attemptsMade + 1 },
        "owner alert failed; will retry",
      );
      throw new Error(`alert email not sent: ${result.error.code}`);
    }
    deps.metrics.alertsSent.inc();
    if (items.length > 1) deps.metrics.alertsBundled.inc(items.length - 1);
    deps.logger.info({ owner: ownerId, replies: items.length }, "owner alert sent");
    return { outcome: { sent: items.length }, done: pending };
  };

  return async (job: Job, token?: string): Promise<{ sent: number } | { skipped: string }> => {
    const ownerId = String(job.data.owner);
    const lease = randomUUID();
    const claimed = await deps.alerts.claim(ownerId, lease, deps.leaseMs ?? ALERT_LEASE_MS);
    if (!claimed.claimed) {
      const wait = Math.min(Math.max(claimed.heldForMs, LEASE_RETRY_MIN_MS), LEASE_RETRY_MAX_MS);
      deps.logger.info(
        { owner: ownerId, jobId: job.id },
        "another job is sending the owner's alerts; will look again",
      );
      await job.moveToDelayed(Date.now() + wait, token);
      throw new DelayedError("the owner's alerts are being sent by another job");
    }
    let done: readonly string[] = [];
    try {
      const sent = await send(ownerId, claimed.replyIds, job);
      done = sent.done;
      return sent.outcome;
    } finally {
      // Exactly the replies sent (or gone) leave; those filed meanwhile wait for the next job.
      const held = await deps.alerts.finish(ownerId, lease, done);
      if (!held)
        deps.logger.warn(
          { owner: ownerId, jobId: job.id },
          "owner alert outlived its lease: another job may have sent the same replies",
        );
    }
  };
}

async function alertItem(
  deps: OwnerAlertProcessorDeps,
  replyId: string,
): Promise<AlertItem | undefined> {
  const ref = parseReplyId(replyId);
  // A shard the deployment does not have: no such reply (it cannot have been filed here).
  if (!ref || ref.shard >= deps.shards.count) return undefined;
  const { replies, store } = deps.shards.of(ref.shard);
  const [reply, stored] = await Promise.all([
    replies.get(ref.eventId, ref.stepId, ref.n),
    store.storedPurchase(ref.eventId),
  ]);
  if (!reply) return undefined;
  const kept = stored.kept;
  const customerId = kept?.customer.id ?? "unknown";
  return {
    replyId,
    receivedAt: reply.receivedAt,
    text: reply.text,
    why: judgeReply(reply.text).why ?? "looks unhappy",
    channel: reply.channel,
    customerId,
    firstName: kept?.customer.firstName ?? null,
    orderId: kept?.orderId ?? null,
    purchasedAt: kept?.occurredAt ?? null,
    items: (kept?.items ?? []).map((item) => ({ name: item.name, quantity: item.quantity })),
    timelineUrl:
      deps.consoleUrl && kept ? `${deps.consoleUrl}${ALERT_NAMES.timelinePath(customerId)}` : null,
  };
}
