import { addressHash, customerHash } from "../domain/address-hash.js";
import type { PurchaseCompleted } from "../domain/events.js";
import { keepLatestTime } from "./customer-history.js";
import {
  PACKED_BUCKETS,
  PACKED_ENTRY_CHARS,
  packedEntries,
  packedExpiry,
  packedPlace,
  StoreKeys,
} from "./keys.js";
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
 * Redis's bookkeeping of a key, as versions of key layout 3 and before kept it). An entry is the
 * next 11 characters of the hash followed by the customer id, valued with the customer's latest
 * purchase there and when the entry expires: `keepMs` after it was last filed, the later expiry
 * kept; intake and re-planning file it for as long as the purchase's record lives, since what an
 * address leads to is the customer's records (lib/packed-index.lua; queue/packed-index-sweeper.ts
 * drops it from Redis within a day after).
 */

/**
 * Buckets read by one script when a customer is taken out of the whole index: 128 of about 60
 * entries each at a million addresses take Redis a few milliseconds.
 */
const FORGET_BATCH = 128;

/** A purchase's entries in the address index, ready for a script to file (CustomerIndex.filingOf). */
export interface CustomerFiling {
  readonly customerId: string;
  /** The customer's erasure marker in the global slot: a purchase before it files nothing. */
  readonly erasureKey: string;
  /** The bucket of each of the purchase's addresses, and its part of the entry there. */
  readonly buckets: readonly string[];
  readonly entries: readonly string[];
  /** The purchase time (epoch ms), which orders an address's customers (kept in seconds). */
  readonly purchasedAt: number;
  /** How long an entry is kept after it was last filed (ms). */
  readonly keepMs: number;
}

export class CustomerIndex {
  private readonly keys: StoreKeys;
  private readonly redis: RedisClient & StoreCommands;
  private secret: Promise<string> | undefined;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: { addressHashSecret?: string; now?: () => number } = {},
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Files the purchase's customer under each address it carries, as of `now` (epoch ms), unless
   * the customer was erased after the purchase (markErased, written before an erasure forgets
   * their addresses): returns false then.
   */
  async remember(event: PurchaseCompleted, keepMs: number, now: number): Promise<boolean> {
    const filing = await this.filingOf(event, keepMs);
    if (filing.buckets.length === 0) return true;
    // One script, not a pipeline: a pipeline copies every script defined on the connection.
    const filed = await this.redis.fuRememberCustomer(
      filing.buckets.length + 1,
      ...filing.buckets,
      filing.erasureKey,
      event.customer.id,
      now,
      keepMs,
      filing.purchasedAt,
      ...filing.entries,
      "erased",
    );
    return filed >= 0;
  }

  /**
   * What `remember` files for a purchase, for a script that files it together with other
   * global writes (OrderStore.linkPurchase): the same entries, in the same buckets.
   */
  async filingOf(event: PurchaseCompleted, keepMs: number): Promise<CustomerFiling> {
    const addresses = [event.customer.email, event.customer.phone].filter(
      (address): address is string => Boolean(address),
    );
    const places = await Promise.all(
      addresses.map(async (address) => packedPlace(await this.hashOf(address))),
    );
    return {
      customerId: event.customer.id,
      erasureKey: await this.erasureKey(event.customer.id),
      buckets: places.map(({ bucket }) => this.keys.addressBucket(bucket)),
      entries: places.map(({ entry }) => entry),
      purchasedAt: Date.parse(event.occurredAt),
      keepMs,
    };
  }

  /**
   * Marks the customer erased as of `at` (a later erasure moves it on; kept `keepMs`) in the
   * global slot, before an erasure forgets their addresses: a purchase of theirs being taken in
   * at that moment then files none again.
   */
  async markErased(customerId: string, at: number, keepMs: number): Promise<void> {
    await keepLatestTime(this.redis, await this.erasureKey(customerId), at, keepMs);
  }

  private async erasureKey(customerId: string): Promise<string> {
    return this.keys.erasedCustomerGlobal(customerHash(await this.ensureSecret(), customerId));
  }

  /**
   * The customers who used an address, latest filed first (those filed by a version of key
   * layout 3 or before, still in the address's own key, after them, by their purchase time). An
   * entry past its expiry that its bucket's sweep has not reached yet is not one.
   */
  async customersOf(address: string): Promise<string[]> {
    const hash = await this.hashOf(address);
    const { bucket, entry } = packedPlace(hash);
    // The address's own key first: packing at start-up moves its entries into the bucket, which
    // is read after, so none is missed in between.
    const legacy = await this.redis.hgetall(this.keys.legacyAddressIndex(`h:${hash}`));
    const packed = await this.redis.hgetall(this.keys.addressBucket(bucket));
    const now = (this.options.now ?? Date.now)();
    // Latest purchase first: a packed entry's value is `<purchase, epoch s>:<expiry, epoch ms>`,
    // an old key's the purchase time in ms.
    const latestFirst = (entries: [string, number][]) =>
      entries
        .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
        .map(([customerId]) => customerId);
    const filed = latestFirst(
      packedEntries(packed, entry).flatMap(([customerId, value]): [string, number][] =>
        packedExpiry(value) >= now ? [[customerId, Number.parseInt(value, 10) || 0]] : [],
      ),
    );
    const older = latestFirst(
      Object.entries(legacy).map(([customerId, at]): [string, number] => [customerId, Number(at)]),
    ).filter((id) => !filed.includes(id));
    return [...filed, ...older];
  }

  /**
   * Takes a customer out of the index (erasure): under the addresses given, and under any other,
   * found by reading every bucket (an address filed by a purchase with no steps, or by one whose
   * record has gone, is named by nothing else that is stored). How many entries went.
   */
  async forget(customerId: string, addresses: readonly string[]): Promise<number> {
    let removed = 0;
    for (const address of addresses) {
      const hash = await this.hashOf(address);
      // The address's own key (a version of key layout 3 or before kept one) first: packing at
      // start-up could otherwise move the customer into the bucket after the bucket was cleared.
      removed += await this.redis.hdel(this.keys.legacyAddressIndex(`h:${hash}`), customerId);
    }
    for (let first = 0; first < PACKED_BUCKETS; first += FORGET_BATCH) {
      const buckets = Array.from(
        { length: Math.min(FORGET_BATCH, PACKED_BUCKETS - first) },
        (_, i) => this.keys.addressBucket(first + i),
      );
      removed += await this.redis.fuForgetCustomer(
        buckets.length,
        ...buckets,
        customerId,
        PACKED_ENTRY_CHARS,
      );
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
          const { bucket, entry } = packedPlace(hash);
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
    return addressHash(await this.ensureSecret(), address);
  }

  private ensureSecret(): Promise<string> {
    this.secret ??= this.options.addressHashSecret
      ? Promise.resolve(this.options.addressHashSecret)
      : sharedSecret(this.redis, this.prefix, "address-hash");
    return this.secret;
  }
}
