import { DateTime } from "luxon";
import type { EmailMessage } from "../channels/channel.js";
import type { Owner } from "../domain/rules.js";
import { plainText } from "../domain/unsafe-text.js";
import { escapeHtml } from "./escape-html.js";

/**
 * How an owner's alert names a customer and an order, and links the customer's timeline (an
 * owner's report names the order of an unhappy reply the same way): the text erasure looks for in
 * outbox files (an alert or a report is addressed to the owner, not the customer).
 */
export const ALERT_NAMES = {
  customer: (customerId: string) => `(customer ${plainText(customerId)})`,
  order: (orderId: string) => `order ${plainText(orderId)}`,
  timelinePath: (customerId: string) => `/customers/${encodeURIComponent(customerId)}`,
};

/** A line of the alert: text, or a link the alert itself makes (never one a customer wrote). */
type AlertLine = string | { readonly label: string; readonly url: string };

/** One unhappy reply as an alert shows it. */
export interface AlertItem {
  /** `<eventId>/<stepId>/<n>` (`@<shard>` after it outside shard 0), for `followups resolve`. */
  readonly replyId: string;
  readonly receivedAt: number;
  readonly text: string;
  /** Why it looks unhappy: "score 2 of 10", "mentions “broken”". */
  readonly why: string;
  readonly channel: string;
  readonly customerId: string;
  readonly firstName: string | null;
  readonly orderId: string | null;
  readonly purchasedAt: string | null;
  readonly items: readonly { readonly name: string; readonly quantity: number }[];
  /** The customer's timeline in the console, when the console is on. */
  readonly timelineUrl: string | null;
}

/**
 * The alert email to an owner: who was unhappy, about which order and what they bought, what they
 * said, and where to see (and resolve) it. Plain text and escaped HTML, in the owner's zone.
 */
export function alertEmail(
  owner: Pick<Owner, "email" | "name" | "timezone">,
  shopName: string,
  items: readonly AlertItem[],
  followUpId: string,
): EmailMessage {
  const first = items[0];
  // As plain as the text: a name's line breaks, other controls or bidi overrides (which would
  // turn the rest of the line around) are not the owner's subject line's.
  const subject = plainText(
    items.length === 1 && first
      ? `${shopName}: an unhappy reply from ${first.firstName ?? "a customer"}${first.orderId ? ` (${ALERT_NAMES.order(first.orderId)})` : ""}`
      : `${shopName}: ${items.length} unhappy replies`,
  );
  const when = (at: number) =>
    DateTime.fromMillis(at, { zone: owner.timezone }).toFormat("ccc d LLL HH:mm ZZZZ");
  // A line is text, or the timeline's link: the one address the alert makes, from PUBLIC_URL.
  // Nothing a customer or publisher wrote (a reply, a name, an item, an order id) becomes a link.
  const blocks = items.map((item): AlertLine[] => {
    const bought = item.items.map((i) => `${i.quantity} × ${plainText(i.name)}`).join(", ");
    return [
      `${item.firstName ? plainText(item.firstName) : "A customer"} ${ALERT_NAMES.customer(item.customerId)}${item.orderId ? `, ${ALERT_NAMES.order(item.orderId)}` : ""}`,
      ...(bought
        ? [
            `Bought: ${bought}${item.purchasedAt ? ` on ${DateTime.fromISO(item.purchasedAt, { zone: owner.timezone }).toFormat("d LLL yyyy")}` : ""}`,
          ]
        : []),
      `Replied by ${item.channel} at ${when(item.receivedAt)} (${plainText(item.why)}):`,
      `  “${plainText(item.text)}”`,
      ...(item.timelineUrl ? [{ label: "Timeline: ", url: item.timelineUrl }] : []),
      `Once dealt with: followups resolve ${item.replyId}`,
    ];
  });
  const lines: AlertLine[] = [
    `Hello ${plainText(owner.name)},`,
    "",
    items.length === 1
      ? "a customer's reply to a follow-up looks unhappy. You may want to get in touch:"
      : `${items.length} customers' replies to follow-ups look unhappy. You may want to get in touch:`,
    "",
    ...blocks.flatMap((block) => [...block, ""]),
    `— followups for ${plainText(shopName)}`,
  ];
  const text = lines
    .map((line) => (typeof line === "string" ? line : `${line.label}${line.url}`))
    .join("\n");
  const html = `<!doctype html><html><body style="font-family:Arial,Helvetica,sans-serif;color:#1f2937;">${lines
    .map((line) => {
      if (typeof line !== "string")
        return `<div>${escapeHtml(line.label)}<a href="${escapeHtml(line.url)}">${escapeHtml(line.url)}</a></div>`;
      return line === "" ? "<br>" : `<div>${escapeHtml(line)}</div>`;
    })
    .join("")}</body></html>`;
  return { channel: "email", followUpId, to: owner.email, subject, text: `${text}\n`, html };
}
