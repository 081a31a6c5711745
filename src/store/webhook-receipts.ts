import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** Provider message ids are remembered this long to ignore replays. */
export const RECEIPT_SECONDS = 7 * 24 * 3600;

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

  /** Whether a delivery was fully processed before. */
  async seen(receipt: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.webhookReceipt(receipt))) === 1;
  }

  /**
   * Takes a delivery for processing: true for the first of several copies arriving together, false
   * for the rest and for a replay. For effects that must not happen twice even in parallel (a
   * reply filed and alerted); on failure, `release` it so the provider's retry is processed.
   */
  async claim(receipt: string): Promise<boolean> {
    const key = this.keys.webhookReceipt(receipt);
    return (await this.redis.set(key, "1", "EX", RECEIPT_SECONDS, "NX")) === "OK";
  }

  /** Gives a claimed delivery back, after processing it failed. */
  async release(receipt: string): Promise<void> {
    await this.redis.del(this.keys.webhookReceipt(receipt));
  }

  /** Marks a delivery processed; call it once its effects are stored. */
  async remember(receipt: string): Promise<void> {
    await this.redis.set(this.keys.webhookReceipt(receipt), "1", "EX", RECEIPT_SECONDS);
  }
}
