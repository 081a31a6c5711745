import { createHmac } from "node:crypto";
import type { Channel } from "../../src/domain/events.js";

/**
 * An unsubscribe token as versions before 7 December 2026 signed them (version 1: the customer id;
 * version 2: the address's keyed hash, then the customer id), written out here on its own so that
 * tests prove such tokens, months old in customers' mailboxes, still work.
 */
export function legacyUnsubscribeToken(
  secret: string,
  target: { customerId: string; channel: Channel; addressHash?: string },
): string {
  const code = { email: 1, sms: 2, voice: 3 }[target.channel];
  const id = Buffer.from(target.customerId, "utf8");
  const payload =
    target.addressHash === undefined
      ? Buffer.concat([Buffer.from([1, code]), id])
      : Buffer.concat([Buffer.from([2, code]), Buffer.from(target.addressHash, "base64url"), id]);
  return signedPayload(secret, payload);
}

/** A token of any payload, signed as the worker signs its own (to forge versions it must refuse). */
export function signedPayload(secret: string, payload: Uint8Array): string {
  const mac = createHmac("sha256", secret)
    .update("followups/unsubscribe\0")
    .update(payload)
    .digest()
    .subarray(0, 16);
  return `${Buffer.from(payload).toString("base64url")}.${mac.toString("base64url")}`;
}
