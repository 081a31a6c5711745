import type { Channel, PurchaseCompleted } from "./events.js";

/** Per channel, the consent a customer's latest purchase that stated one gave, and its time. */
export type StatedConsent = Partial<
  Readonly<Record<Channel, { readonly given: boolean; readonly at: number }>>
>;

/** What consentFor reads of a purchase: the flags it states, and when it was made. */
export interface ConsentingPurchase {
  readonly customer: { readonly consent?: Partial<Readonly<Record<Channel, boolean>>> | undefined };
  readonly occurredAt: string;
}

/**
 * The consent that counts on `channel` for a step of `purchase` (or, in a customer's timeline,
 * for their latest purchase): the latest stated one, unless the purchase states one and is the
 * later (the stated one may come from before it: a purchase an older worker took in noted
 * nothing), or withdraws it at the same instant.
 */
export function consentFor(
  purchase: ConsentingPurchase | undefined,
  channel: Channel,
  stated: StatedConsent | undefined,
): boolean | undefined {
  const own = purchase?.customer.consent?.[channel];
  const latest = stated?.[channel];
  if (latest === undefined) return own;
  const ownAt = purchase ? Date.parse(purchase.occurredAt) : Number.NaN;
  if (own !== undefined && ownAt > latest.at) return own;
  // Made at the same instant: nothing shows which came later, and a withdrawal stands.
  if (own === false && ownAt === latest.at) return false;
  return latest.given;
}

/**
 * The consent each customer's purchases stated, in purchase time: what the worker keeps as the
 * latest per channel (record-purchase.lua, `cn`), for a replay that asks what it was at any
 * instant (simulate). Pure.
 */
export class ConsentTimeline {
  private readonly byCustomer = new Map<
    string,
    { at: number; consent: NonNullable<PurchaseCompleted["customer"]["consent"]> }[]
  >();

  /** Notes what a purchase stated (nothing when it stated no consent). */
  note(event: Pick<PurchaseCompleted, "customer" | "occurredAt">): void {
    const consent = event.customer.consent;
    if (!consent || Object.keys(consent).length === 0) return;
    const stated = this.byCustomer.get(event.customer.id) ?? [];
    stated.push({ at: Date.parse(event.occurredAt), consent });
    this.byCustomer.set(event.customer.id, stated);
  }

  /**
   * Per channel, what the latest purchase made by `at` that stated one said, and when; of
   * purchases made at the same instant, a withdrawal (as the worker: nothing shows which came
   * later, and consent counts only as the latest word).
   */
  at(customerId: string, at: number): StatedConsent {
    const latest: Partial<Record<Channel, { given: boolean; at: number }>> = {};
    for (const stated of this.byCustomer.get(customerId) ?? []) {
      if (stated.at > at) continue;
      for (const [channel, given] of Object.entries(stated.consent) as [Channel, boolean][]) {
        const known = latest[channel];
        if (
          given !== undefined &&
          (known === undefined || stated.at > known.at || (stated.at === known.at && !given))
        )
          latest[channel] = { given, at: stated.at };
      }
    }
    return latest;
  }
}
