import { DateTime } from "luxon";
import { formatProblem } from "../../src/config/config-files.js";
import { loadRules, parseRules } from "../../src/config/load-rules.js";
import { describeProblems, type PurchaseCompleted, parseEvent } from "../../src/domain/events.js";
import { formatMinor, isCurrencyCode, toMinorUnits } from "../../src/domain/money.js";
import type { RuleSet, SendWindow, Weekday } from "../../src/domain/rules.js";
import type { TemplateSet } from "../../src/templates/template-set.js";

/** The shipped config directory, relative to the repository root (vitest's working directory). */
export const SHIPPED_CONFIG_DIR = "config";

/** An instant written with its offset; the DateTime keeps that offset (as events carry it). */
export function instant(iso: string): DateTime {
  const value = DateTime.fromISO(iso, { setZone: true });
  if (!value.isValid) throw new Error(`bad instant in a test: ${iso}`);
  return value;
}

/** One line item as a publisher sends it. */
export interface ItemInput {
  sku: string;
  name: string;
  category: string;
  quantity: number;
  unitPrice: string | number;
}

/** An item of `category` at `unitPrice` (a decimal string, as publishers should send money). */
export function item(
  category: string,
  unitPrice: string | number,
  extra: Partial<ItemInput> = {},
): ItemInput {
  return {
    sku: `SKU-${category.toUpperCase()}`,
    name: `A ${category} item`,
    category,
    quantity: 1,
    unitPrice,
    ...extra,
  };
}

/** What a test may change in the default purchase; a key set to `undefined` is left out. */
export interface PurchaseSpec {
  id?: string;
  occurredAt?: string;
  orderId?: string;
  /** Merged into the default customer. */
  customer?: Record<string, unknown>;
  items?: ItemInput[];
  currency?: string;
  /** Defaults to the exact sum of the items (computed in minor units, never in floats). */
  total?: string | number;
  store?: Record<string, unknown>;
  /** Extra top-level fields, e.g. ones a newer publisher adds. */
  extra?: Record<string, unknown>;
}

/** The default customer: reachable by email and SMS, consented to both, in London. */
export const DEFAULT_CUSTOMER = {
  id: "cus-1",
  name: "Ana Novak",
  email: "ana@example.com",
  phone: "+44 20 7946 0958",
  timezone: "Europe/London",
  consent: { email: true, sms: true },
} as const;

/** A purchase.completed event exactly as a publisher would send it (JSON-ready). */
export function purchaseInput(spec: PurchaseSpec = {}): Record<string, unknown> {
  const items = spec.items ?? [item("kitchenware", "75.00")];
  const currency = spec.currency ?? "GBP";
  const event = {
    type: "purchase.completed",
    id: spec.id ?? "evt-1",
    occurredAt: spec.occurredAt ?? "2026-11-23T10:00:00Z",
    orderId: spec.orderId ?? "ord-1",
    customer: { ...DEFAULT_CUSTOMER, ...spec.customer },
    items,
    total: { amount: spec.total ?? sumOf(items, currency), currency },
    ...(spec.store && { store: spec.store }),
    ...spec.extra,
  };
  // A JSON round trip drops keys set to undefined, as a publisher's serialiser would.
  return JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
}

/** A validated purchase; fails the test with every problem when the input is invalid. */
export function purchase(spec: PurchaseSpec = {}): PurchaseCompleted {
  const result = parseEvent(purchaseInput(spec));
  if (!result.ok) throw new Error(`invalid test purchase:\n${describeProblems(result.problems)}`);
  if (result.event.type !== "purchase.completed") throw new Error("not a purchase");
  return result.event;
}

function sumOf(items: readonly ItemInput[], currency: string): string {
  if (!isCurrencyCode(currency)) return String(items[0]?.unitPrice ?? "0"); // let validation report it
  let minor = 0;
  for (const entry of items) {
    const price = toMinorUnits(entry.unitPrice, currency);
    if (!price.ok) return String(entry.unitPrice); // let validation report it
    minor += price.minor * entry.quantity;
  }
  return formatMinor({ minor, currency });
}

/** Strips the common indentation of a template literal, so YAML can be written indented. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  // Without an initial value, reduce starts at the second part (i = 1): values[i - 1] precedes it.
  const text = strings.reduce((all, part, i) => all + String(values[i - 1]) + part);
  const lines = text
    .replace(/^\n/, "")
    .replace(/\n[ \t]*$/, "\n")
    .split("\n");
  const indent = Math.min(
    ...lines.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length),
  );
  return lines.map((l) => l.slice(indent)).join("\n");
}

const parsedRules = new Map<string, RuleSet>();

/** A rule set from rules-file text, as the loader builds it; fails the test on any problem. */
export function rulesFrom(text: string): RuleSet {
  const cached = parsedRules.get(text);
  if (cached) return cached;
  const result = parseRules(text, "test-rules.yaml");
  if (!result.ok) {
    throw new Error(`invalid test rules:\n${result.problems.map(formatProblem).join("\n")}`);
  }
  parsedRules.set(text, result.rules);
  return result.rules;
}

/** The formatted problems of rules-file text that must be invalid. */
export function rulesProblems(text: string, file = "rules.yaml"): string[] {
  const result = parseRules(text, file);
  if (result.ok) throw new Error("expected the rules to be invalid, but they are valid");
  return result.problems.map(formatProblem);
}

/** The shipped default policy, config/rules.yaml, loaded as the worker loads it. */
export async function shippedRules(): Promise<RuleSet> {
  const result = await loadRules(SHIPPED_CONFIG_DIR);
  if (!result.ok) {
    throw new Error(
      `config/rules.yaml is invalid:\n${result.problems.map(formatProblem).join("\n")}`,
    );
  }
  return result.rules;
}

/** The shipped templates, checked against `rules` as the worker checks them. */
export async function shippedTemplates(rules: RuleSet): Promise<TemplateSet> {
  // Imported here: the many tests that use only the purchases above need no liquid.
  const { loadTemplates } = await import("../../src/templates/load-templates.js");
  const result = await loadTemplates(SHIPPED_CONFIG_DIR, rules);
  if (!result.ok) {
    throw new Error(
      `config/templates is invalid:\n${result.problems.map(formatProblem).join("\n")}`,
    );
  }
  return result.templates;
}

export type DayName = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";
export const EVERY_DAY: readonly DayName[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
export const MON_TO_SAT: readonly DayName[] = ["mon", "tue", "wed", "thu", "fri", "sat"];

/** Options for a rule set with a single step, for timing tests. */
export interface OneStepOptions {
  delay: string;
  kind?: "thank-you" | "check-in" | "discount" | "custom";
  channel?: "email" | "sms" | "voice";
  purpose?: "transactional" | "marketing";
  /** The channel's window; defaults to all day, every day. */
  window?: { start: string; end: string; days?: readonly DayName[]; closedOnHolidays?: boolean };
  timezone?: string;
  holidays?: readonly string[];
  /** Grace period for the step's kind. */
  grace?: string;
}

/** rules.yaml text with one rule (`only`) holding one step (`only.step`). */
export function oneStepYaml(options: OneStepOptions): string {
  const kind = options.kind ?? "thank-you";
  const channel = options.channel ?? "email";
  const w = options.window ?? { start: "00:00", end: "24:00" };
  const days = (w.days ?? EVERY_DAY).join(", ");
  const lines = [
    "version: 1",
    "defaults:",
    `  timezone: ${options.timezone ?? "Europe/London"}`,
    "  currency: GBP",
    "sendWindows:",
    `  ${channel}: { start: "${w.start}", end: "${w.end}", days: [${days}], closedOnHolidays: ${w.closedOnHolidays ?? true} }`,
    `holidays: [${(options.holidays ?? []).join(", ")}]`,
    ...(options.grace ? ["gracePeriods:", `  ${kind}: ${options.grace}`] : []),
    "rules:",
    "  - id: only",
    "    steps:",
    "      - id: step",
    `        kind: ${kind}`,
    `        channel: ${channel}`,
    "        template: test-template",
    `        delay: ${options.delay}`,
    ...(options.purpose ? [`        purpose: ${options.purpose}`] : []),
    "",
  ];
  return lines.join("\n");
}

/** A rule set with a single step, parsed from YAML like any rules file. */
export function oneStepRules(options: OneStepOptions): RuleSet {
  return rulesFrom(oneStepYaml(options));
}

const WEEKDAY_NUMBER: Record<DayName, Weekday> = {
  mon: 1,
  tue: 2,
  wed: 3,
  thu: 4,
  fri: 5,
  sat: 6,
  sun: 7,
};

/** A send window for calling the send-window functions directly. */
export function sendWindow(
  start: string,
  end: string,
  days: readonly DayName[] = EVERY_DAY,
  closedOnHolidays = true,
): SendWindow {
  return {
    startMinute: minuteOf(start),
    endMinute: minuteOf(end),
    days: new Set(days.map((d) => WEEKDAY_NUMBER[d])),
    closedOnHolidays,
  };
}

function minuteOf(text: string): number {
  const [hours, minutes] = text.split(":").map(Number);
  return (hours ?? 0) * 60 + (minutes ?? 0);
}
