import type { Channel } from "../domain/events.js";
import type { Logger } from "../logger.js";
import { type CustomerHistoryStore, LISTED_PURCHASES } from "../store/customer-history.js";
import type { FollowUpStore } from "../store/follow-up-store.js";

/** Where a customer's addresses are read: their shard's purchase history and stored purchases. */
export interface KnownAddressSources {
  readonly history: Pick<CustomerHistoryStore, "purchasesOf">;
  readonly store: Pick<FollowUpStore, "storedPurchase">;
}

/** More addresses of a kind than this, and a customer id is taken to be shared by several people. */
export const MAX_OWN_ADDRESSES = 5;
/** Purchases read at once when looking for a customer's addresses. */
const KNOWN_ADDRESS_BATCH = 50;

/**
 * The email addresses and phone numbers a customer bought with, from their latest purchases still
 * kept (at most LISTED_PURCHASES): an opt-out by event (or by an operator) covers those addresses
 * too, so a later purchase under another customer id (a guest checkout with the same address) is
 * not messaged. A customer id with more than MAX_OWN_ADDRESSES addresses of a kind is shared (a
 * till's "walk-in", a business account): its opt-out covers the id alone, not other people's
 * addresses.
 */
export async function knownAddresses(
  deps: KnownAddressSources & { readonly logger?: Pick<Logger, "warn"> },
  customerId: string,
): Promise<ReadonlyMap<Channel, readonly string[]>> {
  const { emails, phones } = await addressesBoughtWith(deps, customerId);
  const own = (found: Set<string>) => (found.size <= MAX_OWN_ADDRESSES ? [...found] : []);
  if (emails.size > MAX_OWN_ADDRESSES || phones.size > MAX_OWN_ADDRESSES)
    deps.logger?.warn(
      { emails: emails.size, phones: phones.size },
      "customer id bought with many addresses (shared?): its opt-out covers the id, not them",
    );
  return new Map<Channel, readonly string[]>([
    ["email", own(emails)],
    ["sms", own(phones)],
    ["voice", own(phones)],
  ]);
}

/** The email addresses and phone numbers of a customer's latest purchases still kept. */
export async function addressesBoughtWith(
  deps: KnownAddressSources,
  customerId: string,
): Promise<{ emails: Set<string>; phones: Set<string> }> {
  const purchases = (await deps.history.purchasesOf(customerId)).slice(0, LISTED_PURCHASES);
  const emails = new Set<string>();
  const phones = new Set<string>();
  for (let i = 0; i < purchases.length; i += KNOWN_ADDRESS_BATCH) {
    const kept = await Promise.all(
      purchases
        .slice(i, i + KNOWN_ADDRESS_BATCH)
        // Not loadKept: a purchase that cannot be decoded gives no address, and fails no opt-out.
        .map(async ({ eventId }) => (await deps.store.storedPurchase(eventId)).kept),
    );
    for (const purchase of kept) {
      if (purchase?.customer.email) emails.add(purchase.customer.email);
      if (purchase?.customer.phone) phones.add(purchase.customer.phone);
    }
  }
  return { emails, phones };
}
