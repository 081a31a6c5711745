import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Channel } from "../domain/events.js";
import { StoreKeys } from "./keys.js";

/**
 * Who must not be contacted on a channel, by customer id and by address or number. Addresses are
 * stored hashed: the list answers "is this one suppressed?" without holding a readable copy.
 */
export class SuppressionList {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  private key(channel: Channel): string {
    return this.keys.suppressions(channel);
  }

  /** Adds the customer and/or the address to the channel's list; true if either was not on it yet. */
  async suppress(
    channel: Channel,
    who: { customerId?: string; address?: string },
  ): Promise<boolean> {
    const members = memberKeys(who);
    if (members.length === 0) return false;
    return (await this.redis.sadd(this.key(channel), ...members)) > 0;
  }

  /** Suppresses an address known only by its hashed member key (see addressMember). */
  async suppressMember(channel: Channel, member: string): Promise<boolean> {
    return (await this.redis.sadd(this.key(channel), member)) > 0;
  }

  /** Removes them again (SMS START, or an explicit opt-in). */
  async allow(channel: Channel, who: { customerId?: string; address?: string }): Promise<void> {
    const members = memberKeys(who);
    if (members.length > 0) await this.redis.srem(this.key(channel), ...members);
  }

  /** Whether either the customer or the address is on the channel's list. */
  async isSuppressed(
    channel: Channel,
    who: { customerId?: string; address?: string },
  ): Promise<boolean> {
    const members = memberKeys(who);
    if (members.length === 0) return false;
    const found = await this.redis.smismember(this.key(channel), ...members);
    return found.some((flag) => flag === 1);
  }
}

function memberKeys(who: { customerId?: string; address?: string }): string[] {
  const keys: string[] = [];
  if (who.customerId) keys.push(`c:${who.customerId}`);
  if (who.address) keys.push(addressMember(who.address));
  return keys;
}

/** The list's key for an address: hashed, so it can be kept without keeping the address. */
export function addressMember(address: string): string {
  return `a:${createHash("sha256").update(address.trim().toLowerCase()).digest("base64url").slice(0, 22)}`;
}
