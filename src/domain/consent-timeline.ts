import type { Channel, PurchaseCompleted } from "./events.js";

/** The consent a customer gave per channel, as their purchases stated it. */
export type StatedConsent = Partial<Readonly<Record<Channel, boolean>>>;

/**
 * The consent each customer's purchases stated, in purchase time: what the worker keeps as the
 * latest per channel (record-purchase.lua, `cn`), for a replay that asks what it was at
 * any instant (simulate). Pure.
 */
export class ConsentTimeline {
  private readonly byCustomer = new Map<string, { at: number; consent: StatedConsent }[]>();

  /** Notes what a purchase stated (nothing when it stated no consent). */
  note(event: Pick<PurchaseCompleted, "customer" | "occurredAt">): void {
    const consent = event.customer.consent;
    if (!consent || Object.keys(consent).length === 0) return;
    const stated = this.byCustomer.get(event.customer.id) ?? [];
    stated.push({ at: Date.parse(event.occurredAt), consent });
    this.byCustomer.set(event.customer.id, stated);
  }

  /**
   * Per channel, what the latest purchase made by `at` that stated one said; of purchases made at
   * the same instant, the one noted last (as the worker, which takes in the later one last).
   */
  at(customerId: string, at: number): StatedConsent {
    const latest: Partial<Record<Channel, { at: number; given: boolean }>> = {};
    for (const stated of this.byCustomer.get(customerId) ?? []) {
      if (stated.at > at) continue;
      for (const [channel, given] of Object.entries(stated.consent) as [Channel, boolean][]) {
        const known = latest[channel];
        if (given !== undefined && (known === undefined || stated.at >= known.at))
          latest[channel] = { at: stated.at, given };
      }
    }
    const consent: Partial<Record<Channel, boolean>> = {};
    for (const [channel, known] of Object.entries(latest) as [Channel, { given: boolean }][])
      consent[channel] = known.given;
    return consent;
  }
}
