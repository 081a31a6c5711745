import { createHmac } from "node:crypto";
import { LRUCache } from "lru-cache";

/**
 * The keyed hash of an email address or phone number: HMAC-SHA-256 under ADDRESS_HASH_SECRET,
 * truncated to 128 bits. It lets suppressions and indexes match an address without keeping it, and
 * unlike a plain hash it cannot be reversed by hashing a list of known addresses. The secret is
 * never rotated: every stored hash would stop matching.
 */

/** Bytes of the HMAC kept (128 bits; 22 base64url characters). */
export const ADDRESS_HASH_BYTES = 16;
const CONTEXT = "followups/address\0";

/** Addresses are compared case-insensitively, without surrounding spaces (phones are E.164). */
export function normalizeAddress(address: string): string {
  return address.trim().toLowerCase();
}

/** The raw keyed hash of an address. */
export function addressHashBytes(secret: string, address: string): Buffer {
  return createHmac("sha256", secret)
    .update(CONTEXT)
    .update(normalizeAddress(address))
    .digest()
    .subarray(0, ADDRESS_HASH_BYTES);
}

/**
 * Hashes computed lately, by secret: intake asks for the same address's and customer's hash up to
 * four times per event (suppressions, the address index, erasure markers), and an HMAC costs more
 * than the lookup. Bounded, in process memory only; the plain values are in the event being
 * processed anyway. A process uses one secret (two in tests at most): the map is cleared beyond.
 * Keys are `a<address>` or `c<customer id>`.
 */
const RECENT_HASHES = 2_048;
const MAX_SECRETS = 4;
const recentBySecret = new Map<string, LRUCache<string, string>>();

function recentHash(secret: string, key: string): string {
  let recent = recentBySecret.get(secret);
  if (!recent) {
    if (recentBySecret.size >= MAX_SECRETS) recentBySecret.clear();
    recent = new LRUCache<string, string>({
      max: RECENT_HASHES,
      memoMethod: (known) =>
        known.startsWith("a")
          ? addressHashBytes(secret, known.slice(1)).toString("base64url")
          : keyedCustomerHash(secret, known.slice(1)),
    });
    recentBySecret.set(secret, recent);
  }
  return recent.memo(key);
}

/** The keyed hash of an address, as text (22 base64url characters). */
export function addressHash(secret: string, address: string): string {
  return recentHash(secret, `a${address}`);
}

const CUSTOMER_CONTEXT = "followups/customer\0";

/**
 * The keyed hash of a customer id (same secret, its own context, compared exactly): how opt-outs,
 * the audit trail and the erasure register name a customer without holding the id.
 */
export function customerHash(secret: string, customerId: string): string {
  return recentHash(secret, `c${customerId}`);
}

function keyedCustomerHash(secret: string, customerId: string): string {
  return createHmac("sha256", secret)
    .update(CUSTOMER_CONTEXT)
    .update(customerId)
    .digest()
    .subarray(0, ADDRESS_HASH_BYTES)
    .toString("base64url");
}

const ORDER_CONTEXT = "followups/order\0";

/**
 * The keyed hash of an order id (same secret, its own context, compared exactly, 22 base64url
 * characters): how the audit trail, kept a year, names an order, which the purchase's record and
 * the order's link hold in clear only as long as they are kept. Not cached: an operator's action
 * asks for one at a time.
 */
export function orderHash(secret: string, orderId: string): string {
  return createHmac("sha256", secret)
    .update(ORDER_CONTEXT)
    .update(orderId)
    .digest()
    .subarray(0, ADDRESS_HASH_BYTES)
    .toString("base64url");
}
