import type { PurchaseCompleted } from "./events.js";
import type { Money } from "./money.js";

/** Items handed back in one refund: `quantity` of the purchase's `sku`. */
export interface ItemReturn {
  readonly sku: string;
  readonly quantity: number;
  /** Whether the refund named its amount (then the items' prices do not count on top of it). */
  readonly priced: boolean;
  /**
   * The currency of that amount: a refund in another currency than its purchase (one recorded
   * before the purchase arrived) is ignored, its items as its amount.
   */
  readonly currency?: string;
}

/** The refunds recorded against an order. */
export interface OrderRefunds {
  /** Every amount refunded, each in its own currency. */
  readonly refunds: readonly Money[];
  /** Every item handed back, refund by refund. */
  readonly returns: readonly ItemReturn[];
  /** A refund with neither amount nor items: the whole order. */
  readonly fullyRefunded: boolean;
}

/**
 * The purchase as its refunds leave it: items handed back are gone (their quantity less), and the
 * total is less every amount refunded in the order's currency and the price of every item handed
 * back without an amount. A refund in another currency takes nothing off, neither its amount nor
 * its items. `full` when nothing is left: a full refund, every item back, or no value.
 */
export function afterRefunds(
  event: PurchaseCompleted,
  order: OrderRefunds,
): { readonly event: PurchaseCompleted; readonly full: boolean } {
  const back = new Map<string, number>();
  let refunded = order.refunds
    .filter((refund) => refund.currency === event.total.currency)
    .reduce((sum, refund) => sum + refund.minor, 0);
  const left = new Map<string, number>();
  for (const item of event.items) left.set(item.sku, (left.get(item.sku) ?? 0) + item.quantity);
  for (const returned of order.returns) {
    if (returned.currency !== undefined && returned.currency !== event.total.currency) continue;
    const available = (left.get(returned.sku) ?? 0) - (back.get(returned.sku) ?? 0);
    const taken = Math.max(0, Math.min(returned.quantity, available));
    if (taken === 0) continue;
    back.set(returned.sku, (back.get(returned.sku) ?? 0) + taken);
    if (!returned.priced) {
      const price = event.items.find((item) => item.sku === returned.sku)?.unitPrice.minor ?? 0;
      refunded += price * taken;
    }
  }
  const items = event.items.flatMap((item) => {
    const handedBack = Math.min(item.quantity, back.get(item.sku) ?? 0);
    back.set(item.sku, (back.get(item.sku) ?? 0) - handedBack);
    const quantity = item.quantity - handedBack;
    return quantity > 0 ? [{ ...item, quantity }] : [];
  });
  const total = {
    minor: Math.max(0, event.total.minor - refunded),
    currency: event.total.currency,
  };
  const full =
    order.fullyRefunded || (hasRefunds(order) && (total.minor === 0 || items.length === 0));
  return { event: { ...event, items: items.length > 0 ? items : event.items, total }, full };
}

/** Whether an order has any refund at all. */
function hasRefunds(order: OrderRefunds): boolean {
  return order.fullyRefunded || order.refunds.length > 0 || order.returns.length > 0;
}
