import { createHmac, timingSafeEqual } from "node:crypto";
import { ADDRESS_HASH_BYTES } from "./address-hash.js";
import { type Channel, MAX_ID_LENGTH } from "./events.js";

/**
 * Unsubscribe tokens: `base64url(payload) "." base64url(mac)`, where the payload is
 * `version (1 byte) | channel (1 byte) | [address hash (16 bytes)] | customer id (UTF-8)` and the
 * mac is HMAC-SHA256 over a context label and the payload, truncated to 128 bits. Version 2 carries
 * the keyed hash of the address the message went to (domain/address-hash), so the opt-out covers
 * that address under any customer id; version 1 tokens (customer id only) stay valid. Anyone can
 * read the customer id; nobody without the secret can make or change a token.
 */

/** Who a token opts out of what. */
export interface UnsubscribeTarget {
  readonly customerId: string;
  readonly channel: Channel;
  /** The keyed hash of the address the message went to (base64url), when the token carries it. */
  readonly addressHash?: string;
}

const CUSTOMER_ONLY = 1;
const WITH_ADDRESS = 2;
const MAC_BYTES = 16;
/**
 * The event contract's 200 characters (code points, an emoji one: MAX_ID_LENGTH) take at most
 * 800 UTF-8 bytes.
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

/** Longest token `signUnsubscribeToken` produces; longer input is refused before any decoding. */
export const MAX_UNSUBSCRIBE_TOKEN_LENGTH =
  base64urlLength(2 + ADDRESS_HASH_BYTES + MAX_CUSTOMER_ID_BYTES) + 1 + base64urlLength(MAC_BYTES);

const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Makes the token for an unsubscribe link; throws on a short secret or an unusable customer id. */
export function signUnsubscribeToken(secret: string, target: UnsubscribeTarget): string {
  checkSecret(secret);
  const code = CHANNEL_CODES[target.channel];
  if (code === undefined) throw new RangeError(`unknown channel ${JSON.stringify(target.channel)}`);
  const id = Buffer.from(target.customerId, "utf8");
  if (id.length === 0 || id.length > MAX_CUSTOMER_ID_BYTES) {
    throw new RangeError(
      `a customer id for an unsubscribe token must be 1 to ${MAX_CUSTOMER_ID_BYTES} bytes, got ${id.length}`,
    );
  }
  const hash = target.addressHash === undefined ? undefined : decodeCanonical(target.addressHash);
  if (target.addressHash !== undefined && hash?.length !== ADDRESS_HASH_BYTES) {
    throw new RangeError("an address hash for an unsubscribe token must be 16 bytes in base64url");
  }
  const payload = hash
    ? Buffer.concat([Buffer.from([WITH_ADDRESS, code]), hash, id])
    : Buffer.concat([Buffer.from([CUSTOMER_ONLY, code]), id]);
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
  if ((version !== CUSTOMER_ONLY && version !== WITH_ADDRESS) || code === undefined)
    return undefined;
  const channel = CHANNEL_BY_CODE.get(code);
  const hashBytes = version === WITH_ADDRESS ? ADDRESS_HASH_BYTES : 0;
  const id = payload.subarray(2 + hashBytes);
  if (channel === undefined || id.length === 0 || id.length > MAX_CUSTOMER_ID_BYTES) {
    return undefined;
  }
  try {
    const customerId = utf8.decode(id);
    if (hashBytes === 0) return { customerId, channel };
    const addressHash = payload.subarray(2, 2 + hashBytes).toString("base64url");
    return { customerId, channel, addressHash };
  } catch {
    return undefined;
  }
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
