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
  /** The month the charge is in: the month before, for a retry charged before the month turned. */
  readonly month: string;
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
    const previous = monthBefore(month);
    const [added, before = 0, after = 0, ...crossed] = await this.redis.fuAddSpend(
      this.keys.spendMonth(channel, month),
      this.keys.spendCharges(channel, month),
      this.keys.spendAlerts(channel, month),
      this.keys.spendCharges(channel, previous),
      chargeId,
      Math.round(costMicros),
      budgetMicros === undefined ? -1 : Math.round(budgetMicros),
      enforce ? 1 : 0,
      KEEP_MONTH_MS,
      ...BUDGET_ALERTS,
    );
    return {
      added: added === 1 || added === 2,
      beforeMicros: before,
      afterMicros: after,
      crossed,
      month: added === 2 ? previous : month,
    };
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

/** The calendar month before `month` (`YYYY-MM`). */
export function monthBefore(month: string): string {
  const [year = 0, number = 1] = month.split("-").map(Number);
  return number === 1 ? `${year - 1}-12` : `${year}-${String(number - 1).padStart(2, "0")}`;
}
