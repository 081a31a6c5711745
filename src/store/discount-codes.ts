import {
  type CodeLookup,
  type DiscountOffer,
  normalizeCode,
  type RedeemResult,
} from "../domain/discount-code.js";
import { AGGREGATE_RETENTION_MS } from "./delivery-ledger.js";
import { hourOf, idHash, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * The hash a code is stored by (StoreKeys.discountCodeOfHash), in any spelling: what a step
 * record keeps of the code it sent (`codeHash`), for erasure to revoke it.
 */
export function discountCodeHash(typed: string): string {
  return idHash(normalizeCode(typed));
}

/** Where an issued code came from: the step that sent it, and its customer by keyed hash. */
export interface CodeOrigin {
  readonly eventId: string;
  readonly stepId: string;
  /** The shard the step's event lives in (field `h`; codes issued before shards have none: 0). */
  readonly shard: number;
  /** SuppressionList.customerMember: the customer, never by a readable id. */
  readonly customer: string;
}

/**
 * Discount codes as issued, so a till can tell a real code from a typo: each with its percent,
 * last valid day and expiry, the step that sent it, and who redeemed it. Kept until the code
 * expires plus `keepAfterMs` (the attribution window), then gone; no name or address is stored.
 */
export class DiscountCodes {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Stores a code before the message carrying it goes out. Issuing it again (a retried send)
   * changes nothing a till sees, and never clears a redemption.
   */
  async issue(
    offer: DiscountOffer,
    expiresAt: number,
    origin: CodeOrigin,
    issuedAt: number,
    keepAfterMs: number,
  ): Promise<void> {
    const key = this.keys.discountCodeOfHash(discountCodeHash(offer.code));
    await this.redis
      .multi()
      .hset(key, {
        c: offer.code,
        p: offer.percent,
        v: offer.validUntil,
        x: expiresAt,
        e: origin.eventId,
        s: origin.stepId,
        h: origin.shard,
        k: origin.customer,
        i: issuedAt,
      })
      .pexpireat(key, expiresAt + keepAfterMs)
      .exec();
  }

  /** What a till learns of a code typed in any case, with or without hyphens. */
  async lookup(typed: string, now: number): Promise<CodeLookup | undefined> {
    const fields = await this.redis.hgetall(this.keys.discountCode(normalizeCode(typed)));
    return fields.c === undefined ? undefined : lookupOf(fields, now);
  }

  /** The step a code was issued by, for attribution. */
  async origin(typed: string): Promise<(CodeOrigin & { redeemedBy?: string }) | undefined> {
    const [e, s, k, r, h] = await this.redis.hmget(
      this.keys.discountCode(normalizeCode(typed)),
      "e",
      "s",
      "k",
      "r",
      "h",
    );
    if (!e || !s || !k) return undefined;
    return { eventId: e, stepId: s, shard: shardOf(h), customer: k, ...(r && { redeemedBy: r }) };
  }

  /**
   * Redeems a code for an order, atomically: the first order keeps it (see redeem-code.lua).
   * `usedAt` (epoch ms, now when not given) is when it was used, which its expiry is checked
   * against: a purchase that names a code was made before its event is taken in.
   */
  async redeem(
    typed: string,
    orderId: string,
    now: number,
    usedAt: number = now,
  ): Promise<RedeemResult> {
    const key = this.keys.discountCode(normalizeCode(typed));
    const [outcome] = await this.redis.fuRedeemCode(
      key,
      this.keys.globalLedgerHour(hourOf(now)),
      now,
      orderId,
      AGGREGATE_RETENTION_MS,
      Math.round(usedAt),
    );
    if (outcome === 0) return { status: "unknown" };
    const code = lookupOf(await this.redis.hgetall(key), now);
    if (outcome === 1 || outcome === 2) return { status: "redeemed", code, now: outcome === 1 };
    if (outcome === 3) return { status: "taken", code };
    if (outcome === 5) return { status: "revoked", code };
    return { status: "expired", code };
  }

  /**
   * Revokes a code (by discountCodeHash, as a step record keeps it) when its customer is erased: nothing
   * ties it to them any more, it cannot be redeemed, and a till is told `revoked` (or `redeemed`,
   * by no order named, when it was redeemed before). Whether there was such a code.
   */
  async revokeByHash(codeHash: string, now: number): Promise<boolean> {
    return (await this.redis.fuRevokeCode(this.keys.discountCodeOfHash(codeHash), now)) > 0;
  }
}

/** A stored shard number; absent (issued before shards) or unreadable is shard 0. */
export function shardOf(stored: string | null | undefined): number {
  const shard = Number(stored ?? 0);
  return Number.isInteger(shard) && shard >= 0 ? shard : 0;
}

function lookupOf(fields: Record<string, string>, now: number): CodeLookup {
  const redeemedBy = fields.r;
  const expired = Number(fields.x ?? 0) < now;
  // Revoked (its customer erased): one redeemed before keeps its time (`ra`), not its order.
  const revoked = fields.w !== undefined;
  return {
    code: fields.c ?? "",
    status:
      redeemedBy || (revoked && fields.ra !== undefined)
        ? "redeemed"
        : revoked
          ? "revoked"
          : expired
            ? "expired"
            : "valid",
    percent: Number(fields.p ?? 0),
    validUntil: fields.v ?? "",
    ...(redeemedBy && { redeemedBy }),
  };
}
