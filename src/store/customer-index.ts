import { addressHash } from "../domain/address-hash.js";
import type { PurchaseCompleted } from "../domain/events.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { sharedSecret } from "./shared-secrets.js";

/**
 * Which customers used an email address or phone number, for the console and erasure: one small
 * hash per address, named by the address's keyed hash (HMAC under ADDRESS_HASH_SECRET, as the
 * suppression lists name addresses), holding customer id → latest purchase time. No address is
 * stored in plain text. An entry goes with the customer's history, `keepMs` after their latest
 * purchase there.
 */
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

  /** Files the purchase's customer under each address it carries. */
  async remember(event: PurchaseCompleted, keepMs: number): Promise<void> {
    const addresses = [event.customer.email, event.customer.phone].filter(
      (address): address is string => Boolean(address),
    );
    if (addresses.length === 0) return;
    const keys = await Promise.all(
      addresses.map(async (address) => this.keys.customersOfAddress(await this.member(address))),
    );
    // One script, not a pipeline: a pipeline copies every script defined on the connection.
    await this.redis.fuRememberCustomer(
      keys.length,
      ...keys,
      event.customer.id,
      Date.parse(event.occurredAt),
      keepMs,
    );
  }

  /** The customers who used an address, latest purchase first. */
  async customersOf(address: string): Promise<string[]> {
    const all = await this.redis.hgetall(this.keys.customersOfAddress(await this.member(address)));
    return Object.entries(all)
      .sort(([a, x], [b, y]) => Number(y) - Number(x) || a.localeCompare(b))
      .map(([customerId]) => customerId);
  }

  /** Takes a customer out of the index of each address (erasure). */
  async forget(customerId: string, addresses: readonly string[]): Promise<number> {
    let removed = 0;
    for (const address of addresses) {
      const key = this.keys.customersOfAddress(await this.member(address));
      removed += await this.redis.hdel(key, customerId);
    }
    return removed;
  }

  private async member(address: string): Promise<string> {
    this.secret ??= this.options.addressHashSecret
      ? Promise.resolve(this.options.addressHashSecret)
      : sharedSecret(this.redis, this.prefix, "address-hash");
    return `h:${addressHash(await this.secret, address)}`;
  }
}
