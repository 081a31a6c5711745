import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** Provider message ids are remembered this long to ignore replays. */
export const RECEIPT_SECONDS = 7 * 24 * 3600;

/** What a status callback counts an SMS's delivery as (its receipt names it). */
export type DeliveryOutcome = "delivered" | "undelivered";

/**
 * The receipts of the webhooks about a message or call we sent, named by the provider's id of
 * it (a Twilio sid, which leads to the number and the text at Twilio): an SMS's status
 * callbacks, a call's keypad answer, its end, and an answer heard after its end.
 */
export const SENT_RECEIPTS = {
  smsStatus: (messageSid: string, outcome: DeliveryOutcome) => `st:${messageSid}:${outcome}`,
  callAnswer: (callSid: string) => `call:${callSid}:answer`,
  callEnd: (callSid: string) => `call:${callSid}:end`,
  callUnheard: (callSid: string) => `call:${callSid}:unheard`,
};

/** Every receipt SENT_RECEIPTS may have written about the message or call (erasure). */
export function receiptsOfSent(channel: "sms" | "voice", providerId: string): string[] {
  return channel === "voice"
    ? [
        SENT_RECEIPTS.callAnswer(providerId),
        SENT_RECEIPTS.callEnd(providerId),
        SENT_RECEIPTS.callUnheard(providerId),
      ]
    : (["delivered", "undelivered"] as const).map((outcome) =>
        SENT_RECEIPTS.smsStatus(providerId, outcome),
      );
}

/**
 * Remembers webhook deliveries (by provider message id), so a replayed one is ignored. A receipt
 * is written only after what the delivery asked for is done (or together with it, see
 * DeliveryLedger.countOnce): a delivery that failed half-way is processed again when retried.
 */
export class WebhookReceipts {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Whether a delivery was fully processed before, under any of the names given (one round trip:
   * global keys share a slot).
   */
  async seen(receipt: string, ...alsoAs: readonly string[]): Promise<boolean> {
    const names = [receipt, ...alsoAs].map((name) => this.keys.webhookReceipt(name));
    return (await this.redis.exists(...names)) > 0;
  }

  /**
   * When a message was first delivered to us, as far as this store knows: `at` (epoch ms) the
   * first time it is asked (kept a week beside the receipt, under `first:<receipt>`), the earliest
   * time it was given since. A delivery again of a message whose first one failed half-way (Twilio
   * retries after a time-out or an error) is dated by the first, as is a copy replayed from the
   * webhook spool that came before one handled live. `again`: an earlier delivery was dated.
   */
  async firstDelivered(receipt: string, at: number): Promise<{ at: number; again: boolean }> {
    const key = this.keys.webhookReceipt(`first:${receipt}`);
    const results = await this.redis
      .multi()
      .zscore(key, "at")
      .zadd(key, "LT", Math.round(at), "at")
      .expire(key, RECEIPT_SECONDS)
      .zscore(key, "at")
      .exec();
    const failed = results?.find(([error]) => error)?.[0];
    if (failed) throw failed;
    const before = results?.[0]?.[1];
    const score = results?.[3]?.[1];
    return {
      at: typeof score === "string" ? Number(score) : Math.round(at),
      again: typeof before === "string",
    };
  }

  /** Marks a delivery processed; call it once its effects are stored. */
  async remember(receipt: string): Promise<void> {
    await this.redis.set(this.keys.webhookReceipt(receipt), "1", "EX", RECEIPT_SECONDS);
  }
}
