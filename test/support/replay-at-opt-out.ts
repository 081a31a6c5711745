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
 * Runs `run` with `meanwhile` called once, given the arguments, the first time `method` of a
 * SuppressionList is called, before that call goes ahead. True when `meanwhile` ran.
 */
async function beforeFirstCall<M extends "noteOptOutAt" | "allow">(
  method: M,
  meanwhile: (...args: Parameters<SuppressionList[M]>) => Promise<unknown>,
  run: () => Promise<unknown>,
): Promise<boolean> {
  const original = SuppressionList.prototype[method] as (...args: unknown[]) => Promise<unknown>;
  let ran = false;
  const spy = vi.spyOn(SuppressionList.prototype, method).mockImplementation(async function (
    this: SuppressionList,
    ...args: unknown[]
  ) {
    if (!ran) {
      ran = true;
      await meanwhile(...(args as Parameters<SuppressionList[M]>));
    }
    // Every argument passed on: an opt-out of offers only notes its own scope's time.
    return original.apply(this, args);
  } as never);
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return ran;
}

/**
 * Runs `replay` (a text handled from the webhook spool) at the moment the next opt-out notes its
 * time (SuppressionList.noteOptOutAt), before the note is written: the race between a replayed
 * START and an opt-out being written. `run` is the opt-out; true when the replay ran.
 */
export function replayWhileOptingOut(
  replay: (at: number) => Promise<unknown>,
  run: () => Promise<unknown>,
): Promise<boolean> {
  return beforeFirstCall("noteOptOutAt", (_who, at) => replay(at), run);
}

/**
 * Runs `meanwhile` once, at the moment `run` (a START being handled) first takes the number off a
 * list (SuppressionList.allow), before it does: what is handled while a START is applied. True
 * when `meanwhile` ran.
 */
export function whileStartApplies(
  run: () => Promise<unknown>,
  meanwhile: () => Promise<unknown>,
): Promise<boolean> {
  return beforeFirstCall("allow", () => meanwhile(), run);
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
