import { escapeUnsafeCharacters as escapeControls } from "../domain/unsafe-text.js";
import type {
  CancelResult,
  FailedFollowUp,
  OrderTimeline,
  RefusedEvent,
} from "../operations/operator-tools.js";
import {
  type CustomerTimeline,
  STORED_DATA_WORDS,
  type TimelineAuditEntry,
  type TimelineStep,
} from "../operations/timeline.js";
import { formatTable } from "../reports/text-table.js";
import { jsonOutput, terminalText } from "./terminal-text.js";

// Kept importable from here, beside the renderings that use them.
export { jsonOutput, terminalText };

/** The timeline for people: who, how to reach them, their opt-outs, each purchase and its steps. */
export function renderTimelineText(timeline: CustomerTimeline | OrderTimeline): string {
  if (timeline.customer === null) return renderOrderWithoutPurchase(timeline);
  const { customer } = timeline;
  const contact =
    [customer.email, customer.phone].filter(Boolean).join(", ") || "no contact stored";
  const lines = [
    "orderId" in timeline
      ? `Order ${timeline.orderId}, customer ${customer.id}`
      : `Customer ${customer.id}`,
    `  ${customer.firstName ?? "(name not stored)"}: ${contact}`,
    `  time zone ${customer.timezone}${customer.locale ? `, locale ${customer.locale}` : ""}`,
    `  consent:  ${channelList(customer.consent, (v) => (v === null ? "not stated" : v ? "yes" : "no"))}`,
    `  opt-outs: ${channelList(timeline.suppressions, (v) => (v === null ? "none" : v === "all" ? "everything" : "offers"))}`,
  ];
  if ("orderId" in timeline) lines.push(...orderRefundLines(timeline));
  if (timeline.purchases.length === 0) lines.push("", "No purchases stored.");
  const notListed = timeline.purchasesNotListed ?? 0;
  if (notListed > 0)
    lines.push(
      "",
      `The latest ${timeline.purchases.length} purchases of ${timeline.purchases.length + notListed}: ${notListed === 1 ? "1 older one is" : `${notListed} older ones are`} not listed here. Show an older one by its order id: followups order ORDER_ID.`,
    );
  for (const purchase of timeline.purchases) {
    const total = purchase.total
      ? `${purchase.total.amount} ${purchase.total.currency}`
      : "total not stored";
    const refunded = purchase.refunded ? `, refunded (${purchase.refunded})` : "";
    lines.push(
      "",
      `Purchase ${purchase.eventId}, order ${purchase.orderId ?? "?"}, ${purchase.occurredAt ?? "time not stored"}, ${total}${refunded}`,
      `  details stored: ${STORED_DATA_WORDS[purchase.data]}`,
    );
    for (const item of purchase.items)
      lines.push(
        `  ${item.quantity} × ${item.name} at ${item.unitPrice.amount} ${item.unitPrice.currency}`,
      );
    if (purchase.steps.length === 0) {
      lines.push("  no follow-ups");
      continue;
    }
    const table = formatTable(
      ["STEP", "STATE", "DUE (UTC)", "DUE (LOCAL)", "TRIES", "NOTE"],
      purchase.steps.map((step) =>
        [
          step.ref,
          step.state,
          step.dueAt.replace(/\.\d{3}Z$/, "Z"),
          step.dueLocal,
          String(step.attempts),
          stepNote(step),
        ].map(escapeControls),
      ),
    );
    lines.push(
      ...table
        .trimEnd()
        .split("\n")
        .map((line) => `  ${line}`),
    );
    for (const step of purchase.steps) {
      for (const reply of step.replies) {
        lines.push(
          `  reply to ${step.stepId} at ${reply.receivedAt}: ${JSON.stringify(reply.text)}${reply.unhappy ? ` (UNHAPPY: ${reply.why})` : ""}`,
        );
      }
    }
  }
  lines.push("", ...renderAuditLines(timeline.audit));
  return `${lines.map(escapeControls).join("\n")}\n`;
}

/** An order known by its refunds alone: they, and what they do when its purchase arrives. */
function renderOrderWithoutPurchase(order: OrderTimeline): string {
  const lines = [
    order.purchaseArrived
      ? `Order ${order.orderId}: its purchase arrived after the order was refunded in full, and was dropped`
      : `Order ${order.orderId}: its purchase has not arrived yet (refunds can arrive before it)`,
    ...orderRefundLines(order),
  ];
  if (order.awaitingPurchase) lines.push("", `Then: ${order.awaitingPurchase}.`);
  return `${lines.map(escapeControls).join("\n")}\n`;
}

/** The refunds recorded for an order and the purchases dropped for them, one line each. */
function orderRefundLines(order: OrderTimeline): string[] {
  const lines: string[] = [];
  if (order.refunds.length > 0) lines.push("", "Refunds recorded for the order:");
  for (const refund of order.refunds) {
    const parts = [
      refund.full ? "the whole order" : undefined,
      refund.amount ? `${refund.amount.amount} ${refund.amount.currency}` : undefined,
      ...refund.items.map((item) => `${item.quantity} × ${item.sku} handed back`),
    ].filter(Boolean);
    lines.push(`  ${refund.eventId}: ${parts.join(", ")}`);
  }
  for (const dropped of order.droppedPurchases)
    lines.push(
      `  purchase ${dropped.eventId} arrived ${dropped.arrivedAt}, after the full refund: nothing planned, nothing kept`,
    );
  return lines;
}

/** The audit entries, one line each, or a line saying there are none. */
export function renderAuditLines(audit: readonly TimelineAuditEntry[]): string[] {
  if (audit.length === 0) return ["No operator actions recorded."];
  return [
    "Operator actions:",
    ...audit.map(
      (entry) =>
        `  ${entry.at} ${entry.by} ${entry.action} ${entry.target}${entry.detail ? `: ${entry.detail}` : ""}`,
    ),
  ];
}

/** `followups cancel`'s answer. */
export function renderCancelText(result: CancelResult): string {
  const lines = [
    `Cancelled ${result.cancelled.length}:`,
    ...result.cancelled.map((ref) => `  ${ref}`),
  ];
  if (result.inFlight.length > 0)
    lines.push(`Being sent right now, not cancelled:`, ...result.inFlight.map((ref) => `  ${ref}`));
  return `${lines.map(escapeControls).join("\n")}\n`;
}

/** `followups failed`'s list. */
export function renderFailedText(failed: readonly FailedFollowUp[]): string {
  if (failed.length === 0) return "No failed follow-ups.\n";
  return formatTable(
    ["STEP", "CHANNEL", "FAILED AT", "TRIES", "WHY"],
    failed.map((item) =>
      [
        item.ref,
        item.channel,
        item.failedAt.replace(/\.\d{3}Z$/, "Z"),
        String(item.attempts),
        item.reason.words,
      ].map(escapeControls),
    ),
  );
}

/** `followups refused` as a table, latest first. */
export function renderRefusedText(refused: readonly RefusedEvent[]): string {
  if (refused.length === 0) return "No refused events.\n";
  return formatTable(
    ["EVENT", "TYPE", "REFUSED AT", "TRIES", "WHY"],
    refused.map((event) =>
      [
        event.eventId,
        event.type,
        event.refusedAt.replace(/\.\d{3}Z$/, "Z"),
        String(event.attempts),
        event.reason,
      ].map(escapeControls),
    ),
  );
}

/** Said after an SMS status this version does not know (one Twilio may add later). */
const UNKNOWN_STATUS_WORDS = "a status this version does not know: not an outcome";

function stepNote(step: TimelineStep): string {
  const notes: string[] = [];
  if (step.postponed)
    notes.push(`postponed to ${step.postponed.untilLocal}: ${step.postponed.why}`);
  if (step.reason) notes.push(step.reason.text || step.reason.code);
  if (step.providerMessageId) notes.push(`id ${step.providerMessageId}`);
  if (step.delivery)
    notes.push(
      `${step.delivery.status}${step.delivery.errorCode ? ` (${step.delivery.errorCode})` : ""}${step.delivery.unknown ? ` (${UNKNOWN_STATUS_WORDS})` : ""}`,
    );
  if (step.resends > 0) notes.push(`resent ${step.resends}×`);
  if (step.retries > 0) notes.push(`retried ${step.retries}×`);
  if (step.takeovers > 0) notes.push(`possible duplicate ${step.takeovers}×`);
  return notes.join("; ");
}

function channelList<T>(values: Readonly<Record<string, T>>, word: (value: T) => string): string {
  return Object.entries(values)
    .map(([channel, value]) => `${channel} ${word(value)}`)
    .join(", ");
}
