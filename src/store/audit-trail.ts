import { randomBytes } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** How long an operator's action stays on record. */
export const AUDIT_RETENTION_MS = 366 * 86_400_000;

/** What operators do, as the audit trail names it. */
export type AuditAction =
  | "cancel"
  | "resend"
  | "retry"
  | "erase"
  /** An operator's opt-out of a customer or an address (followups opt-out, the API, the console). */
  | "opt-out"
  | "resolve"
  | "sign-in"
  | "reshard"
  | "migrate"
  /** An action in Bull Board (/console/queues): pause, resume, retry, clean, remove, … */
  | "queue-board";

/** One operator action: who, what, when. No personal data: a customer is named by keyed hash. */
export interface AuditEntry {
  /** Epoch ms. */
  readonly at: number;
  /** The operator (`--by`, the admin token's name, or the login user of the shell). */
  readonly by: string;
  readonly action: AuditAction;
  /**
   * What it was done to: a step (`<eventId>/<stepId>`), an order (`order k:<keyed hash>`), a
   * customer (`customer k:<keyed hash>`), "failed". Never an order or customer id in clear: the
   * trail is kept a year, longer than the records that hold them.
   */
  readonly target: string;
  /** The customer it concerned, as a keyed hash (SuppressionList.customerMember), when one did. */
  readonly customer?: string;
  /** A reason given, or what came of it ("3 steps cancelled"). */
  readonly detail?: string;
}

/**
 * The audit trail: every operator action, by time, kept for a year (older entries go as new ones
 * are written). One sorted set of small JSON entries; the console and `followups customer` read
 * it back, whole or for one customer.
 */
export class AuditTrail {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  async record(entry: AuditEntry): Promise<void> {
    const key = this.keys.auditTrail();
    // A random tag keeps two identical actions in the same millisecond as two entries.
    const member = JSON.stringify({ ...entry, n: randomBytes(4).toString("hex") });
    await this.redis.zadd(key, entry.at, member);
    await this.redis.zremrangebyscore(key, "-inf", `(${entry.at - AUDIT_RETENTION_MS}`);
  }

  /**
   * Blanks what the customer's entries say beyond who did what when (erasure): their targets and
   * details can name an order or carry an operator's note about them.
   */
  async scrubCustomer(customer: string): Promise<number> {
    const key = this.keys.auditTrail();
    const all = await this.redis.zrange(key, "0", "-1", "WITHSCORES");
    let scrubbed = 0;
    for (let i = 0; i + 1 < all.length; i += 2) {
      const member = all[i] ?? "";
      const entry = JSON.parse(member) as AuditEntry & { n?: string };
      if (entry.customer !== customer || entry.action === "erase") continue;
      const { detail: _detail, ...kept } = entry;
      await this.redis.zrem(key, member);
      const score = all[i + 1] ?? String(entry.at);
      await this.redis.zadd(key, score, JSON.stringify({ ...kept, target: "(erased)" }));
      scrubbed++;
    }
    return scrubbed;
  }

  /** Entries in [since, until), latest first; only one customer's when `customer` is given. */
  async entries(
    options: { since?: number; until?: number; customer?: string; limit?: number } = {},
  ): Promise<AuditEntry[]> {
    const raw = await this.redis.zrevrangebyscore(
      this.keys.auditTrail(),
      options.until === undefined ? "+inf" : `(${options.until}`,
      options.since ?? "-inf",
    );
    const entries: AuditEntry[] = [];
    for (const member of raw) {
      const { n: _tag, ...entry } = JSON.parse(member) as AuditEntry & { n?: string };
      if (options.customer !== undefined && entry.customer !== options.customer) continue;
      entries.push(entry);
      if (options.limit !== undefined && entries.length >= options.limit) break;
    }
    return entries;
  }
}
