import { BUDGET_ALERTS, type PricedChannel } from "../domain/spend.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** A month's spend is kept this long after its last change: reports and alerts of last month. */
const KEEP_MONTH_MS = 62 * 24 * 3600 * 1000;

export interface SpendChange {
  /** False when the budget was reached and the message had to respect it: nothing was added. */
  readonly added: boolean;
  readonly beforeMicros: number;
  readonly afterMicros: number;
  /** Alert thresholds (percent) this charge crossed first this month. */
  readonly crossed: readonly number[];
}

/**
 * What SMS and calls spent per calendar month, shared by every worker: a message is charged once
 * (by its charge id: a retried or taken-over send is not charged again), and a message that must
 * respect a reached budget is refused and charged nothing.
 */
export class SpendLedger {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Charges `costMicros` for `chargeId` to the month's spend; with `enforce`, only while the spend
   * is under `budgetMicros` (undefined: no budget).
   */
  async add(
    channel: PricedChannel,
    month: string,
    chargeId: string,
    costMicros: number,
    budgetMicros: number | undefined,
    enforce: boolean,
  ): Promise<SpendChange> {
    const [added, before = 0, after = 0, ...crossed] = await this.redis.fuAddSpend(
      this.keys.spendMonth(channel, month),
      this.keys.spendCharges(channel, month),
      this.keys.spendAlerts(channel, month),
      chargeId,
      Math.round(costMicros),
      budgetMicros === undefined ? -1 : Math.round(budgetMicros),
      enforce ? 1 : 0,
      KEEP_MONTH_MS,
      ...BUDGET_ALERTS,
    );
    return { added: added === 1, beforeMicros: before, afterMicros: after, crossed };
  }

  /** Takes a message's charge back: it was not sent after all. */
  async giveBack(channel: PricedChannel, month: string, chargeId: string): Promise<void> {
    await this.redis.fuReturnSpend(
      this.keys.spendMonth(channel, month),
      this.keys.spendCharges(channel, month),
      chargeId,
    );
  }

  /** The month's spend so far, in micros. */
  async spent(channel: PricedChannel, month: string): Promise<number> {
    return Number((await this.redis.get(this.keys.spendMonth(channel, month))) ?? 0);
  }
}
