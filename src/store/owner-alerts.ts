import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** Pending alerts are kept this long if no alert job ever sends them (Redis lost the job). */
const PENDING_MS = 7 * 86_400_000;

/**
 * Unhappy replies waiting to reach an owner: a list of reply ids per owner, and when the owner's
 * current alert window started. The first alert of a window goes at once; later ones wait for the
 * window's end and go together (queue-alert.lua decides, atomically for every worker).
 */
export class OwnerAlertQueue {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** Files the reply; when the owner's alert email should go out (epoch ms) and whether it is now. */
  async file(
    ownerId: string,
    replyId: string,
    now: number,
    windowMs: number,
  ): Promise<{ sendAt: number; bundled: boolean }> {
    const [bundled, sendAt] = await this.redis.fuQueueAlert(
      this.keys.ownerAlerts(ownerId),
      this.keys.ownerAlertState(ownerId),
      replyId,
      now,
      windowMs,
      PENDING_MS,
    );
    return { sendAt, bundled: bundled === 1 };
  }

  /** The reply ids waiting for the owner, oldest first. */
  async pending(ownerId: string): Promise<string[]> {
    return this.redis.lrange(this.keys.ownerAlerts(ownerId), 0, -1);
  }

  /** Forgets the first `count` pending replies once their email went out. */
  async sent(ownerId: string, count: number): Promise<void> {
    await this.redis.ltrim(this.keys.ownerAlerts(ownerId), count, -1);
  }
}
