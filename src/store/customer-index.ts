import { addressHash } from "../domain/address-hash.js";
import type { PurchaseCompleted } from "../domain/events.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { scanKeys } from "./reshard-store.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { sharedSecret } from "./shared-secrets.js";

/**
 * Which customers used an email address or phone number, for the console, erasure and replies
 * that name no message: an index from an address's keyed hash (HMAC under ADDRESS_HASH_SECRET,
 * as the suppression lists name addresses) to customer ids, with no address in plain text.
 *
 * Addresses are packed into 16,384 buckets by the first 14 bits of their hash, so that an address
 * costs an entry of about 35 bytes in a small hash instead of a key of its own (136 bytes and
 * Redis's bookkeeping of a key; versions before 2026-12-04 kept one). An entry is the next 11
 * characters of the hash followed by the customer id, valued with when it was last filed; it is kept `keepMs` after
 * that, as long as the customer's history (remember-customer.lua sweeps older ones out).
 */

/** Bits of an address hash that pick its bucket: 16,384 buckets. */
const BUCKET_BITS = 14;
/** Characters of the base64url hash that the bucket's number already holds (its first 12 bits). */
const IN_BUCKET_NAME = 2;
/**
 * Characters of the hash after those that name an address in its bucket: 66 bits, so that two of
 * the few hundred addresses of a bucket share them with a chance of about one in 10^17.
 */
const IN_ENTRY = 11;

/** An address's place in the index: its bucket and the part of an entry naming the address. */
export interface AddressPlace {
  readonly bucket: number;
  readonly entry: string;
}

/** Where an address with this keyed hash (22 base64url characters) is filed. */
export function addressPlace(hash: string): AddressPlace {
  const bytes = Buffer.from(hash.slice(0, 4), "base64url");
  if (bytes.length < 3 || hash.length < IN_BUCKET_NAME + IN_ENTRY)
    throw new RangeError("an address hash is 22 base64url characters");
  return {
    bucket: ((bytes[0] ?? 0) << (BUCKET_BITS - 8)) | ((bytes[1] ?? 0) >> (16 - BUCKET_BITS)),
    entry: hash.slice(IN_BUCKET_NAME, IN_BUCKET_NAME + IN_ENTRY),
  };
}

export class CustomerIndex {
  private readonly keys: StoreKeys;
  private readonly redis: RedisClient & StoreCommands;
  private secret: Promise<string> | undefined;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: { addressHashSecret?: string } = {},
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** Files the purchase's customer under each address it carries, as of `now` (epoch ms). */
  async remember(event: PurchaseCompleted, keepMs: number, now: number): Promise<void> {
    const addresses = [event.customer.email, event.customer.phone].filter(
      (address): address is string => Boolean(address),
    );
    if (addresses.length === 0) return;
    const places = await Promise.all(
      addresses.map(async (address) => addressPlace(await this.hashOf(address))),
    );
    // One script, not a pipeline: a pipeline copies every script defined on the connection.
    await this.redis.fuRememberCustomer(
      places.length,
      ...places.map(({ bucket }) => this.keys.addressBucket(bucket)),
      event.customer.id,
      now,
      keepMs,
      ...places.map(({ entry }) => entry),
    );
  }

  /** The customers who used an address, latest filed first. */
  async customersOf(address: string): Promise<string[]> {
    const hash = await this.hashOf(address);
    const { bucket, entry } = addressPlace(hash);
    const [packed, legacy] = await Promise.all([
      this.redis.hgetall(this.keys.addressBucket(bucket)),
      this.redis.hgetall(this.keys.legacyAddressIndex(`h:${hash}`)),
    ]);
    const latest = new Map<string, number>();
    const note = (customerId: string, at: string) =>
      latest.set(customerId, Math.max(Number(at) || 0, latest.get(customerId) ?? 0));
    for (const [field, at] of Object.entries(packed))
      if (field.length > entry.length && field.startsWith(entry))
        note(field.slice(entry.length), at);
    for (const [customerId, at] of Object.entries(legacy)) note(customerId, at);
    return [...latest]
      .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
      .map(([customerId]) => customerId);
  }

  /** Takes a customer out of the index of each address (erasure); how many entries went. */
  async forget(customerId: string, addresses: readonly string[]): Promise<number> {
    let removed = 0;
    for (const address of addresses) {
      const hash = await this.hashOf(address);
      const { bucket, entry } = addressPlace(hash);
      removed += await this.redis.hdel(this.keys.addressBucket(bucket), `${entry}${customerId}`);
      removed += await this.redis.hdel(this.keys.legacyAddressIndex(`h:${hash}`), customerId);
    }
    return removed;
  }

  /**
   * Moves the index of every address that an earlier version kept in a key of its own into its
   * bucket, once per deployment (workers run it at start-up; several at once only find less to
   * move). Returns how many addresses were moved, or undefined when it had been done before or
   * was stopped half-way (the next start goes on).
   */
  async packEarlierIndexes(
    keepMs: number,
    now: () => number,
    stopped: () => boolean = () => false,
  ): Promise<number | undefined> {
    if ((await this.redis.exists(this.keys.addressIndexPacked())) === 1) return undefined;
    const legacy = this.keys.legacyAddressIndex("h:");
    let moved = 0;
    for await (const found of scanKeys(this.redis, `${legacy}*`)) {
      if (stopped()) return undefined;
      await Promise.all(
        found.map(async (key) => {
          const hash = key.slice(legacy.length);
          // A key that is not an address's index (none is written so) is left alone.
          if (!/^[A-Za-z0-9_-]{22}$/.test(hash)) return;
          const { bucket, entry } = addressPlace(hash);
          await this.redis.fuPackAddressIndex(
            key,
            this.keys.addressBucket(bucket),
            entry,
            now(),
            keepMs,
          );
          moved++;
        }),
      );
    }
    await this.redis.set(this.keys.addressIndexPacked(), String(now()));
    return moved;
  }

  private async hashOf(address: string): Promise<string> {
    this.secret ??= this.options.addressHashSecret
      ? Promise.resolve(this.options.addressHashSecret)
      : sharedSecret(this.redis, this.prefix, "address-hash");
    return addressHash(await this.secret, address);
  }
}
