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

  /** Marks a delivery processed; call it once its effects are stored. */
  async remember(receipt: string): Promise<void> {
    await this.redis.set(this.keys.webhookReceipt(receipt), "1", "EX", RECEIPT_SECONDS);
  }
}
