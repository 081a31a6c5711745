import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { withStoreCommands } from "./script-registry.js";

/**
 * How long an owner's mark is kept after the report that set it: a report covers at most the
 * latest 400 days, so an older mark would change nothing (an owner removed from the rules leaves
 * theirs to expire).
 */
const MARK_KEPT_MS = 401 * 86_400_000;

/**
 * Per owner (by scheduler id), the local date up to which (exclusive) the reports sent to them
 * cover: each scheduled run covers from it, so a change of weekday, frequency or zone, and a run
 * dropped after its last failed attempt, neither repeat nor skip a day.
 */
export class ReportMarks {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /**
   * The owner's mark; with none yet (their first scheduled run), `since` is set as it: the days
   * before the first run's period are owed no report, and its own days are owed one until a
   * report that covers them is sent (also when that run fails for good).
   */
  async since(ownerId: string, since: string): Promise<string> {
    const key = this.keys.reportMark(ownerId);
    await this.redis.set(key, since, "PX", MARK_KEPT_MS, "NX");
    return (await this.redis.get(key)) ?? since;
  }

  /** Records a sent report's end (exclusive local date); the mark never moves back. */
  async sent(ownerId: string, until: string): Promise<void> {
    await withStoreCommands(this.redis).fuAdvanceReportMark(
      this.keys.reportMark(ownerId),
      until,
      MARK_KEPT_MS,
    );
  }
}
