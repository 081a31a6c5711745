import { cutText } from "../domain/cut-text.js";
import { countSmsSegments, smsEncoding } from "../domain/sms-segments.js";
import type { TemplateContext, TemplateOrder } from "./template-context.js";

/**
 * Keeps an SMS within the segment cap at send time. The samples `check` renders are realistic, but
 * a purchase may carry a 300-character item name, or one character outside GSM-7 that halves what
 * a segment holds: such an SMS is rendered again with the longest names shortened, and fails only
 * when even names of one character do not fit (the template's fixed text is too long).
 */

/** Marks a shortened name: "..." keeps a GSM-7 body in GSM-7; "…" costs one unit in UCS-2. */
export const SMS_ELLIPSIS = { gsm7: "...", ucs2: "…" } as const;

/** What the SMS must fit. */
export interface SmsFitOptions {
  /** channels.sms.maxSegments of the rules. */
  readonly maxSegments: number;
  /** A line put below the template's text (the opt-out line), counted towards the cap. */
  readonly appendLine?: string | undefined;
}

export type SmsFit =
  | {
      readonly ok: true;
      readonly text: string;
      readonly segments: number;
      /** Names were cut to at most this many UTF-16 units (plus the ellipsis); absent if none was. */
      readonly shortenedTo?: number;
    }
  | {
      readonly ok: false;
      /** The shortest body there is: every name cut to one character. */
      readonly text: string;
      readonly segments: number;
    };

/** Renders the (tidied) text of an SMS for a context; a shortened context renders the same way. */
export type RenderSmsText = (context: TemplateContext) => Promise<string>;

/**
 * Renders the SMS and, when it is over the cap, renders it again with the names from the purchase
 * (customer name and first name, store name, item names) cut to the longest length that fits; the
 * longest names lose the most, short ones are kept whole. The cut length is found by bisection, so
 * a 300-character name costs about ten renders of a small template.
 */
export async function fitSms(
  render: RenderSmsText,
  context: TemplateContext,
  options: SmsFitOptions,
): Promise<SmsFit> {
  const body = (text: string) =>
    options.appendLine === undefined ? text : `${text}\n${options.appendLine}`;
  const attempt = async (maxLength?: number) => {
    if (maxLength === undefined) return measured(body(await render(context)));
    const gsm7 = body(await render(shortenNames(context, maxLength, SMS_ELLIPSIS.gsm7)));
    // UCS-2 anyway (a character of the template or of a kept name): "…" is the shorter mark.
    if (smsEncoding(gsm7).encoding === "GSM-7") return measured(gsm7);
    return measured(body(await render(shortenNames(context, maxLength, SMS_ELLIPSIS.ucs2))));
  };
  const fit = await fitByShortening(
    attempt,
    longestName(context),
    (body) => body.segments <= options.maxSegments,
  );
  return fit.ok
    ? {
        ok: true,
        ...fit.result,
        ...(fit.shortenedTo !== undefined && { shortenedTo: fit.shortenedTo }),
      }
    : { ok: false, ...fit.result };
}

/**
 * Renders a message's text (a call's words) and, when it is longer than `maxLength` characters,
 * again with the names from the purchase cut to the longest length that fits, as fitSms does.
 */
export async function fitLength(
  render: RenderSmsText,
  context: TemplateContext,
  maxLength: number,
): Promise<{ readonly ok: boolean; readonly text: string }> {
  const fit = await fitByShortening(
    (cutTo) => render(cutTo === undefined ? context : shortenNames(context, cutTo, "…")),
    longestName(context),
    (text) => text.length <= maxLength,
  );
  return { ok: fit.ok, text: fit.result };
}

/**
 * `attempt()` whole, else `attempt(n)` for the largest n (names cut to n UTF-16 units) whose
 * result `fits`, found by bisection; not ok (with names of one unit) when even that does not fit.
 */
async function fitByShortening<T>(
  attempt: (cutTo?: number) => Promise<T>,
  longest: number,
  fits: (result: T) => boolean,
): Promise<{ ok: boolean; result: T; shortenedTo?: number }> {
  const whole = await attempt();
  if (fits(whole)) return { ok: true, result: whole };
  if (longest <= 1) return { ok: false, result: whole };
  const shortest = await attempt(1);
  if (!fits(shortest)) return { ok: false, result: shortest };
  let best = { result: shortest, shortenedTo: 1 };
  let low = 2;
  let high = longest - 1;
  while (low <= high) {
    const middle = Math.floor((low + high) / 2);
    const candidate = await attempt(middle);
    if (fits(candidate)) {
      best = { result: candidate, shortenedTo: middle };
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return { ok: true, ...best };
}

function measured(text: string) {
  return { text, segments: countSmsSegments(text) };
}

/** The context with every name from the purchase cut to `maxLength` UTF-16 units plus `ellipsis`. */
export function shortenNames(
  context: TemplateContext,
  maxLength: number,
  ellipsis: string,
): TemplateContext {
  const cut = (value: string) => shorten(value, maxLength, ellipsis);
  const cutOrNull = (value: string | null) => (value === null ? null : cut(value));
  const cutOrder = (order: TemplateOrder): TemplateOrder => ({
    ...order,
    items: order.items.map((item) => ({ ...item, name: cut(item.name) })),
  });
  return {
    ...context,
    customer: {
      ...context.customer,
      name: cutOrNull(context.customer.name),
      firstName: cutOrNull(context.customer.firstName),
    },
    order: cutOrder(context.order),
    orders: context.orders.map(cutOrder),
    store: { ...context.store, name: cutOrNull(context.store.name) },
  };
}

/**
 * `value` when it has at most `maxLength` UTF-16 units, else its first whole characters within
 * them and the ellipsis: never half an emoji, a flag, or a letter without its accent (cutText).
 * Units, not code points: a name that fits costs nothing, which matters for 500 item names per
 * attempt.
 */
function shorten(value: string, maxLength: number, ellipsis: string): string {
  if (value.length <= maxLength) return value;
  return `${cutText(value, maxLength).trimEnd()}${ellipsis}`;
}

function longestName(context: TemplateContext): number {
  const names = [
    context.customer.name,
    context.customer.firstName,
    context.store.name,
    ...context.orders.flatMap((order) => order.items.map((item) => item.name)),
  ];
  return names.reduce((longest, name) => Math.max(longest, name?.length ?? 0), 0);
}

/** Why a body needs as many segments as it does, for messages: its encoding and length. */
export function describeSmsLength(text: string): string {
  const encoding = smsEncoding(text);
  const why =
    encoding.encoding === "UCS-2"
      ? `UCS-2, 70 characters per message, because of ${JSON.stringify(encoding.because)}`
      : "GSM-7, 160 characters per message";
  return `${Array.from(text).length} characters, ${why}`;
}
