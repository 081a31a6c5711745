import type { Redis } from "ioredis";
import type { PricedChannel } from "../domain/spend.js";
import { StoreKeys } from "./keys.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** A month's spend is kept this long after its last change: reports and alerts of last month. */
const KEEP_MONTH_MS = 62 * 24 * 3600 * 1000;

export interface SpendChange {
  /** False when the budget was reached and the message had to respect it: nothing was added. */
  readonly added: boolean;
  readonly beforeMicros: number;
  readonly afterMicros: number;
}

/**
 * What SMS and calls spent per calendar month, shared by every worker: a send adds its cost
 * atomically, and a message that must respect a reached budget adds nothing and is refused.
 */
export class SpendLedger {
  private readonly redis: Redis & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: Redis, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** Adds `costMicros` to the month's spend; with `enforce`, only while it is under `budgetMicros`. */
  async add(
    channel: PricedChannel,
    month: string,
    costMicros: number,
    budgetMicros: number,
    enforce: boolean,
  ): Promise<SpendChange> {
    const [added, before, after] = await this.redis.fuAddSpend(
      this.keys.spendMonth(channel, month),
      Math.round(costMicros),
      Math.round(budgetMicros),
      enforce ? 1 : 0,
      KEEP_MONTH_MS,
    );
    return { added: added === 1, beforeMicros: before, afterMicros: after };
  }

  /** Takes a cost back: the message was not sent after all. */
  async giveBack(channel: PricedChannel, month: string, costMicros: number): Promise<void> {
    if (costMicros > 0)
      await this.redis.decrby(this.keys.spendMonth(channel, month), Math.round(costMicros));
  }

  /** The month's spend so far, in micros. */
  async spent(channel: PricedChannel, month: string): Promise<number> {
    return Number((await this.redis.get(this.keys.spendMonth(channel, month))) ?? 0);
  }
}
