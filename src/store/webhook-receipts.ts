import type { Redis } from "ioredis";
import { StoreKeys } from "./keys.js";

/** Provider message ids are remembered this long to ignore replays. */
const RECEIPT_SECONDS = 7 * 24 * 3600;

/** Remembers webhook deliveries (by provider message id), so a replayed one is ignored. */
export class WebhookReceipts {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /** Marks a delivery seen; false when it was seen before. */
  async firstSighting(receipt: string): Promise<boolean> {
    const key = this.keys.webhookReceipt(receipt);
    return (await this.redis.set(key, "1", "EX", RECEIPT_SECONDS, "NX")) === "OK";
  }
}
