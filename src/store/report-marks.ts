import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * How long an owner's mark is kept after the report that set it: a report covers at most the
 * latest 400 days, so an older mark would change nothing.
 */
const MARK_KEPT_MS = 401 * 86_400_000;

/**
 * Per owner (by scheduler id), the local date up to which (exclusive) the reports sent to them
 * cover: each scheduled run covers from it, so a change of weekday, frequency or zone, and a run
 * dropped after its last failed attempt, neither repeat nor skip a day. One scheduled run of an
 * owner at a time reads and moves it, under a lease (claim-report-mark.lua): two runs sending at
 * once (a stalled run taken again while its first attempt still sends) would send the same days.
 */
export class ReportMarks {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Takes the owner's report lease for `leaseMs` (it ends on its own if this worker dies) and
   * reads their mark; or how long another run still holds the lease (ms). With no mark yet (their
   * first scheduled run), `since` is set as it: the days before the first run's period are owed
   * no report, and its own days are owed one until a report that covers them is sent (also when
   * that run fails for good).
   */
  async claim(
    ownerId: string,
    token: string,
    leaseMs: number,
    since: string,
  ): Promise<{ claimed: true; mark: string } | { claimed: false; heldForMs: number }> {
    const reply = await this.redis.fuClaimReportMark(
      this.keys.reportMark(ownerId),
      this.keys.reportMarkLease(ownerId),
      token,
      leaseMs,
      since,
      MARK_KEPT_MS,
    );
    return reply[0] === 1
      ? { claimed: true, mark: reply[1] }
      : { claimed: false, heldForMs: reply[1] };
  }

  /**
   * Records a sent report's end (exclusive local date; none when nothing was sent), never moving
   * the mark back, and gives up the lease; false when the lease had run out and passed on.
   */
  async finish(ownerId: string, token: string, until?: string): Promise<boolean> {
    const released = await this.redis.fuAdvanceReportMark(
      this.keys.reportMark(ownerId),
      this.keys.reportMarkLease(ownerId),
      until ?? "",
      MARK_KEPT_MS,
      token,
    );
    return released === 1;
  }

  /**
   * Forgets the owner's mark (they were removed from the rules): added again, their first run
   * covers its own period, not the days since their last report before.
   */
  async forget(ownerId: string): Promise<void> {
    await this.redis.del(this.keys.reportMark(ownerId));
  }
}
