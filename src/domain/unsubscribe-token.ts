import { createHmac, timingSafeEqual } from "node:crypto";
import { ADDRESS_HASH_BYTES } from "./address-hash.js";
import { type Channel, MAX_ID_LENGTH } from "./events.js";

/**
 * Unsubscribe tokens: `base64url(payload) "." base64url(mac)`, where the payload is
 * `version (1 byte) | channel (1 byte) | [address hash (16 bytes)] | customer (16 bytes)` and the
 * mac is HMAC-SHA256 over a context label and the payload, truncated to 128 bits. The customer is
 * named by the keyed hash of their id (domain/address-hash `customerHash`), the form their
 * opt-outs are stored in, so a token is 47 or 69 characters whatever the id (a link within one
 * header line for a customer id of 200 emoji) and names no customer to whoever reads it. Version 4
 * carries the keyed hash of the address the message went to, so the opt-out covers that address
 * under any customer id; version 3 does not. Tokens signed before 7 December 2026 carry the
 * customer id itself (UTF-8, up to 800 bytes; version 2 after an address hash, version 1 without)
 * and stay valid. Nobody without the secret can make or change a token.
 */

/** The channel a token opts out of, and the address's keyed hash when the token carries it. */
interface TokenTarget {
  readonly channel: Channel;
  /** The keyed hash of the address the message went to (base64url), when the token carries it. */
  readonly addressHash?: string;
}

/**
 * Who a token opts out of what: the customer by the keyed hash of their id, or, in a token signed
 * before 7 December 2026, by the id itself.
 */
export type UnsubscribeTarget = TokenTarget &
  (
    | { readonly customerHash: string; readonly customerId?: never }
    | { readonly customerId: string; readonly customerHash?: never }
  );

/** Versions signed before 7 December 2026: the customer id in UTF-8, without or with the address. */
const CUSTOMER_ID_ONLY = 1;
const CUSTOMER_ID_WITH_ADDRESS = 2;
/** Versions signed now: the customer id's keyed hash, without or with the address. */
const CUSTOMER_ONLY = 3;
const WITH_ADDRESS = 4;
const MAC_BYTES = 16;
/**
 * A customer id in a token signed before 7 December 2026: the event contract's 200 characters
 * (code points, an emoji one: MAX_ID_LENGTH) take at most 800 UTF-8 bytes.
 */
const MAX_CUSTOMER_ID_BYTES = 4 * MAX_ID_LENGTH;
/** Secrets shorter than this are refused: a guessable key makes every token forgeable. */
export const MIN_UNSUBSCRIBE_SECRET_LENGTH = 16;
const MAC_CONTEXT = Buffer.from("followups/unsubscribe\0", "utf8");

/** Stable wire codes: adding a channel must not renumber the others. */
const CHANNEL_CODES = { email: 1, sms: 2, voice: 3 } as const satisfies Record<Channel, number>;
const CHANNEL_BY_CODE = new Map<number, Channel>(
  Object.entries(CHANNEL_CODES).map(([channel, code]) => [code, channel as Channel]),
);

const base64urlLength = (bytes: number) => Math.ceil((bytes * 8) / 6);

/**
 * Longest token ever signed (one of before 7 December 2026 for an id of 800 bytes); longer input
 * is refused before any decoding.
 */
export const MAX_UNSUBSCRIBE_TOKEN_LENGTH =
  base64urlLength(2 + ADDRESS_HASH_BYTES + MAX_CUSTOMER_ID_BYTES) + 1 + base64urlLength(MAC_BYTES);

/** The longest token `signUnsubscribeToken` signs (version 4: the address's hash too): 69 characters. */
export const SIGNED_UNSUBSCRIBE_TOKEN_LENGTH =
  base64urlLength(2 + 2 * ADDRESS_HASH_BYTES) + 1 + base64urlLength(MAC_BYTES);

const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Makes the token for an unsubscribe link, naming the customer by the keyed hash of their id
 * (`customerHash`, 16 bytes in base64url); throws on a short secret or a malformed hash.
 */
export function signUnsubscribeToken(
  secret: string,
  target: TokenTarget & { readonly customerHash: string },
): string {
  checkSecret(secret);
  const code = CHANNEL_CODES[target.channel];
  if (code === undefined) throw new RangeError(`unknown channel ${JSON.stringify(target.channel)}`);
  const customer = hashBytes(target.customerHash, "a customer hash");
  const address =
    target.addressHash === undefined ? undefined : hashBytes(target.addressHash, "an address hash");
  const payload = address
    ? Buffer.concat([Buffer.from([WITH_ADDRESS, code]), address, customer])
    : Buffer.concat([Buffer.from([CUSTOMER_ONLY, code]), customer]);
  return `${payload.toString("base64url")}.${mac(secret, payload).toString("base64url")}`;
}

/** The customer and channel a token names, or undefined for anything we did not sign. */
export function verifyUnsubscribeToken(
  secret: string,
  token: string,
): UnsubscribeTarget | undefined {
  checkSecret(secret);
  if (typeof token !== "string" || token.length > MAX_UNSUBSCRIBE_TOKEN_LENGTH) return undefined;
  if (!TOKEN_SHAPE.test(token)) return undefined;
  const [encodedPayload = "", encodedMac = ""] = token.split(".");
  const payload = decodeCanonical(encodedPayload);
  const given = decodeCanonical(encodedMac);
  if (payload === undefined || given === undefined || given.length !== MAC_BYTES) return undefined;
  if (!timingSafeEqual(given, mac(secret, payload))) return undefined;

  const [version, code] = payload;
  const channel = code === undefined ? undefined : CHANNEL_BY_CODE.get(code);
  if (channel === undefined) return undefined;
  const hasAddress = version === WITH_ADDRESS || version === CUSTOMER_ID_WITH_ADDRESS;
  const address = hasAddress ? payload.subarray(2, 2 + ADDRESS_HASH_BYTES) : undefined;
  const customer = payload.subarray(hasAddress ? 2 + ADDRESS_HASH_BYTES : 2);
  const target = {
    channel,
    ...(address && { addressHash: address.toString("base64url") }),
  };
  if (version === CUSTOMER_ONLY || version === WITH_ADDRESS) {
    if (customer.length !== ADDRESS_HASH_BYTES) return undefined;
    return { ...target, customerHash: customer.toString("base64url") };
  }
  if (version !== CUSTOMER_ID_ONLY && version !== CUSTOMER_ID_WITH_ADDRESS) return undefined;
  if (customer.length === 0 || customer.length > MAX_CUSTOMER_ID_BYTES) return undefined;
  try {
    return { ...target, customerId: utf8.decode(customer) };
  } catch {
    return undefined;
  }
}

/** A keyed hash (customer or address) as its 16 bytes; throws when it is not one. */
function hashBytes(text: string, what: string): Buffer {
  const bytes = decodeCanonical(text);
  if (bytes?.length !== ADDRESS_HASH_BYTES) {
    throw new RangeError(`${what} for an unsubscribe token must be 16 bytes in base64url`);
  }
  return bytes;
}

function mac(secret: string, payload: Buffer): Buffer {
  return createHmac("sha256", secret)
    .update(MAC_CONTEXT)
    .update(payload)
    .digest()
    .subarray(0, MAC_BYTES);
}

/** Node's decoder skips stray characters; only the one spelling we produce is accepted. */
function decodeCanonical(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

function checkSecret(secret: string): void {
  if (typeof secret !== "string" || secret.length < MIN_UNSUBSCRIBE_SECRET_LENGTH) {
    throw new RangeError(
      `the unsubscribe secret must be at least ${MIN_UNSUBSCRIBE_SECRET_LENGTH} characters`,
    );
  }
}
