import { vi } from "vitest";
import { createLogger } from "../../src/logger.js";
import { createCustomerFeedback } from "../../src/queue/customer-feedback.js";
import { shardStores } from "../../src/store/shards.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { WebhookReceipts } from "../../src/store/webhook-receipts.js";
import { shippedRules } from "./fixtures.js";
import type { PipelineHarness } from "./pipeline-harness.js";

/**
 * Runs `replay` (a text handled from the webhook spool) at the moment the next opt-out notes its
 * time (SuppressionList.noteOptOutAt), before the note is written: the race between a replayed
 * START and an opt-out being written. `run` is the opt-out; true when the replay ran.
 */
export async function replayWhileOptingOut(
  replay: (at: number) => Promise<unknown>,
  run: () => Promise<unknown>,
): Promise<boolean> {
  const noteOptOutAt = SuppressionList.prototype.noteOptOutAt;
  let replayed = false;
  const spy = vi
    .spyOn(SuppressionList.prototype, "noteOptOutAt")
    .mockImplementation(async function (this: SuppressionList, who, at, scope) {
      if (!replayed) {
        replayed = true;
        await replay(at);
      }
      // The scope too: an opt-out of offers only notes its own time, not that of everything.
      return noteOptOutAt.call(this, who, at, scope);
    });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return replayed;
}

/** Inbound texts handled as the worker does (no confirmation texts), on the pipeline's Redis. */
export async function textsHandled(p: PipelineHarness, suppressions: SuppressionList) {
  const rules = await shippedRules();
  return createCustomerFeedback({
    rules: () => ({ ...rules, optOutConfirmation: false }),
    templates: () => {
      throw new Error("no confirmation texts in this test");
    },
    sms: { send: async () => ({ ok: true, id: "SMx" }) },
    shards: shardStores(p.redis, p.prefix, 1),
    ledger: { countOnce: async () => true, countFirstOutcome: async () => "counted" as const },
    smsReferences: new SmsReferences(p.redis, p.prefix),
    suppressions,
    receipts: new WebhookReceipts(p.redis, p.prefix),
    logger: createLogger({ level: "silent", pretty: false }),
    now: () => Date.now(),
  });
}

/**
 * `run` (an opt-out of `phone`) with a START the number sent a minute before it replayed from the
 * spool as it notes its time; the suppression list to check afterwards.
 */
export async function optOutRacingStart(
  p: PipelineHarness,
  phone: string,
  run: () => Promise<unknown>,
): Promise<{ replayed: boolean; list: SuppressionList }> {
  const list = new SuppressionList(p.redis, p.prefix);
  const feedback = await textsHandled(p, list);
  const replayed = await replayWhileOptingOut(
    (at) =>
      feedback.inboundSms({
        from: phone,
        body: "START",
        messageSid: `SM-spooled-${at}`,
        receivedAt: at - 60_000,
      }),
    run,
  );
  return { replayed, list };
}
