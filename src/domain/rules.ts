import type { DateTime, Duration } from "luxon";
import type { Channel, PurchaseCompleted } from "./events.js";
import { compareAmount, describeMoney, type Money, type Rates, type Threshold } from "./money.js";
import type { SpendSettings } from "./spend.js";
import type { VoiceCallSettings } from "./voice-call.js";

/**
 * The compiled rule set the planner works from: groups resolved, durations parsed, rules in the
 * order they are considered. It is built from config/rules.yaml by the config loader.
 */

export const STEP_KINDS = ["thank-you", "check-in", "discount", "custom"] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** The template that confirms an SMS opt-out; no rule step may send it. */
export const OPT_OUT_CONFIRMATION_TEMPLATE = "opt-out-confirmation";

export const PURPOSES = ["transactional", "marketing"] as const;
/** Marketing steps need the customer's consent for the channel; transactional ones follow config. */
export type Purpose = (typeof PURPOSES)[number];

/** Weekday numbers as luxon counts them: 1 = Monday … 7 = Sunday. */
export type Weekday = 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** When a channel may reach a customer, in the customer's local time. */
export interface SendWindow {
  /** Opening, minutes after local midnight. */
  readonly startMinute: number;
  /** Closing (exclusive), minutes after local midnight; 1440 means midnight at the end of the day. */
  readonly endMinute: number;
  readonly days: ReadonlySet<Weekday>;
  /** Whether the rule set's holiday dates close this window for the whole day. */
  readonly closedOnHolidays: boolean;
}

/** One follow-up a rule asks for. */
export interface StepSpec {
  /** Stable within the rule; the plan's step id is `<ruleId>.<id>`. */
  readonly id: string;
  readonly kind: StepKind;
  readonly channel: Channel;
  readonly template: string;
  /** Added to the purchase time in the customer's zone, calendar-aware (P3M is three calendar months). */
  readonly delay: Duration;
  readonly purpose: Purpose;
  readonly sendWindow?: SendWindow;
  /**
   * A fallback (`fallback:` of a voice step in the rules): the id of the call step in the same
   * rule. It is planned with its call, its delay counts from the purchase like any step's (the
   * call's delay plus `after`), and it goes out only when the call was not answered.
   */
  readonly fallbackOf?: string;
  /** A fallback's `after`: how long after its call ended at the earliest. */
  readonly fallbackAfter?: Duration;
  /**
   * A thank-you of a rule with `coalesce`: it goes out no sooner than this long after the
   * purchase, and thanks for the customer's other purchases within that window too.
   */
  readonly coalesce?: Duration;
}

/** A condition on the purchase and the customer's history; see matchCondition. */
export type Condition =
  | { readonly type: "all"; readonly conditions: readonly Condition[] }
  | { readonly type: "any"; readonly conditions: readonly Condition[] }
  | {
      readonly type: "anyItem";
      readonly categories?: ReadonlySet<string>;
      readonly label: string;
      readonly minPrice?: Threshold;
      readonly maxPrice?: Threshold;
    }
  | { readonly type: "allItems"; readonly categories: ReadonlySet<string>; readonly label: string }
  | { readonly type: "noItem"; readonly categories: ReadonlySet<string>; readonly label: string }
  | { readonly type: "total"; readonly min?: Threshold; readonly max?: Threshold }
  | { readonly type: "store"; readonly storeIds: ReadonlySet<string> }
  | {
      readonly type: "history";
      readonly minPreviousPurchases?: number;
      readonly maxPreviousPurchases?: number;
    };

export interface Rule {
  readonly id: string;
  readonly description?: string;
  /** Higher first; ties keep file order. */
  readonly priority: number;
  /** When it matches, rules after it are not considered at all. */
  readonly final: boolean;
  readonly when: Condition;
  readonly steps: readonly StepSpec[];
  /** This rule's discount codes (defaults.discount with the rule's own settings over it). */
  readonly discount?: DiscountSettings;
  /** No step of this rule for a customer within this long of the last one planned for them. */
  readonly cooldown?: Duration;
  /**
   * One thank-you for a customer's purchases within this long of their first: it goes out no
   * sooner than the window's end and lists every order; the later purchases' thank-yous join it.
   */
  readonly coalesce?: Duration;
}

export interface DiscountSettings {
  readonly codePrefix: string;
  readonly percent: number;
  readonly validFor: Duration;
}

/** Delivery settings per channel, honoured across all worker processes. */
export interface ChannelSettings {
  readonly ratePerSecond: number;
  /** SMS only: a rendered body longer than this many segments is a config error. */
  readonly maxSegments: number;
}

/** At most `max` messages per channel to one customer within any `perMs` span. */
export interface FrequencyCap {
  readonly max: number;
  readonly perMs: number;
}

/**
 * What happens to a step that would break a cap: dropped, moved to when the cap allows it, or
 * (`exempt`) the caps do not apply to it: it neither waits for room nor uses any.
 */
export type CapAction = "skip" | "defer" | "exempt";

/** A shop owner who receives delivery reports by email on a schedule in their own zone. */
export interface Owner {
  readonly name: string;
  readonly email: string;
  readonly timezone: string;
  readonly frequency: "daily" | "weekly";
  /** Weekly reports: 1 = Monday … 7 = Sunday. */
  readonly weekday: Weekday;
  /** Local time of day, "HH:MM". */
  readonly time: string;
  /** Stores (`store.id`) whose unhappy replies this owner is alerted to; absent: all of them. */
  readonly stores?: readonly string[];
  /** Whether unhappy replies reach this owner at once (an alert email within a minute). */
  readonly alerts: boolean;
  /** Alerts within this long after one are bundled into one email at its end. */
  readonly alertWindow: Duration;
}

export interface RuleSet {
  /** Short content hash of the files the set was built from; logged and stamped on jobs. */
  readonly version: string;
  readonly defaults: {
    readonly timezone: string;
    readonly currency: string;
    readonly locale: string;
    readonly discount: DiscountSettings;
    /** Whether transactional steps (thank-you, check-in) also need the channel consent flag. */
    readonly transactionalNeedsConsent: boolean;
  };
  /** Per kind: no step of that kind for a customer within this long of the last one. */
  readonly cooldowns: Readonly<Partial<Record<StepKind, Duration>>>;
  /** Exchange rates into defaults.currency (`currencies` in the file); every threshold holds them. */
  readonly rates: Rates;
  /** A purchase within `window` after a sent follow-up counts as brought back by it. */
  readonly attribution: { readonly window: Duration };
  readonly sendWindows: Readonly<Record<Channel, SendWindow>>;
  readonly channels: Readonly<Record<Channel, ChannelSettings>>;
  /** How voice calls are spoken and answered (`channels.voice`). */
  readonly voiceCalls: VoiceCallSettings;
  /** SMS and call prices and the monthly budgets (`prices`, `budget`). */
  readonly spend: SpendSettings;
  /** Per customer, across all their purchases. */
  readonly frequencyCaps: Readonly<Record<Channel, readonly FrequencyCap[]>>;
  readonly whenCapped: Readonly<Record<StepKind, CapAction>>;
  readonly shopName: string;
  /** The shop's postal address, one entry per line; empty when the rules name none. */
  readonly shopAddress: readonly string[];
  /** Whether a number that opts out by SMS gets one confirmation text (opt-out-confirmation). */
  readonly optOutConfirmation: boolean;
  readonly owners: readonly Owner[];
  /** Local dates (YYYY-MM-DD) on which windows that honour holidays stay closed. */
  readonly holidays: ReadonlySet<string>;
  /** How late a step of each kind may still go out; later than that it is skipped. */
  readonly gracePeriods: Readonly<Record<StepKind, Duration>>;
  /** In the order they are considered: priority descending, then file order. */
  readonly rules: readonly Rule[];
}

/** What the planner knows of the customer's earlier purchases (kept by the store, passed in). */
export interface CustomerHistory {
  /** Completed purchases before this one. */
  readonly previousPurchases: number;
  readonly lastPurchaseAt?: string;
  /** When the steps planned for the customer's other purchases fall due (epoch ms), for cooldowns. */
  readonly recent?: RecentSteps;
}

/**
 * When the steps under a cooldown planned for a customer's other purchases fall due (epoch ms,
 * any order), per rule and per kind: a new step is held to each of them, not only the latest.
 */
export interface RecentSteps {
  readonly byRule: ReadonlyMap<string, readonly number[]>;
  readonly byKind: ReadonlyMap<StepKind, readonly number[]>;
}

/** A new customer: nothing bought before. */
export const NO_HISTORY: CustomerHistory = { previousPurchases: 0 };

export type MatchResult = { matched: true } | { matched: false; reason: string };

const MATCHED: MatchResult = { matched: true };

/** Decides whether a condition holds, and if not, says why in words an operator understands. */
export function matchCondition(
  condition: Condition,
  event: PurchaseCompleted,
  history: CustomerHistory,
): MatchResult {
  switch (condition.type) {
    case "all": {
      for (const inner of condition.conditions) {
        const result = matchCondition(inner, event, history);
        if (!result.matched) return result;
      }
      return MATCHED;
    }
    case "any": {
      const reasons: string[] = [];
      for (const inner of condition.conditions) {
        const result = matchCondition(inner, event, history);
        if (result.matched) return MATCHED;
        reasons.push(result.reason);
      }
      return { matched: false, reason: reasons.join("; and ") };
    }
    case "anyItem":
      return matchAnyItem(condition, event);
    case "allItems": {
      const outside = event.items.find((item) => !condition.categories.has(item.category));
      return outside
        ? {
            matched: false,
            reason: `item ${outside.sku} (${outside.category}) is not in ${condition.label}`,
          }
        : MATCHED;
    }
    case "noItem": {
      const inside = event.items.find((item) => condition.categories.has(item.category));
      return inside
        ? {
            matched: false,
            reason: `item ${inside.sku} (${inside.category}) is in ${condition.label}`,
          }
        : MATCHED;
    }
    case "total":
      return matchTotal(condition, event.total);
    case "store": {
      const storeId = event.store?.id;
      if (storeId !== undefined && condition.storeIds.has(storeId)) return MATCHED;
      return {
        matched: false,
        reason: `store ${storeId ?? "(none)"} is not one of ${[...condition.storeIds].join(", ")}`,
      };
    }
    case "history":
      return matchHistory(condition, history);
  }
}

function matchAnyItem(
  condition: Extract<Condition, { type: "anyItem" }>,
  event: PurchaseCompleted,
): MatchResult {
  const inCategory = condition.categories
    ? event.items.filter((item) => condition.categories?.has(item.category))
    : event.items;
  if (inCategory.length === 0) {
    return { matched: false, reason: `no item is in ${condition.label}` };
  }
  const priced = inCategory.filter((item) =>
    priceInRange(item.unitPrice, condition.minPrice, condition.maxPrice),
  );
  if (priced.length > 0) return MATCHED;
  const range = describeRange(condition.minPrice, condition.maxPrice);
  return { matched: false, reason: `no item in ${condition.label} has a unit price ${range}` };
}

function matchTotal(condition: Extract<Condition, { type: "total" }>, total: Money): MatchResult {
  for (const [bound, side] of [
    [condition.min, "below"],
    [condition.max, "above"],
  ] as const) {
    if (!bound) continue;
    const compared = compareAmount(total, bound);
    if (!compared.ok) return { matched: false, reason: compared.problem };
    if ((side === "below" && compared.sign < 0) || (side === "above" && compared.sign > 0)) {
      return {
        matched: false,
        reason: `${side} threshold: order total ${describeMoney(total)} is ${side} ${compared.against}`,
      };
    }
  }
  return MATCHED;
}

function matchHistory(
  condition: Extract<Condition, { type: "history" }>,
  history: CustomerHistory,
): MatchResult {
  const count = history.previousPurchases;
  const { minPreviousPurchases: min, maxPreviousPurchases: max } = condition;
  if (min !== undefined && count < min) {
    return {
      matched: false,
      reason: `customer has ${count} earlier purchase${count === 1 ? "" : "s"}, needs ${min} or more`,
    };
  }
  if (max !== undefined && count > max) {
    return {
      matched: false,
      reason: `customer has ${count} earlier purchase${count === 1 ? "" : "s"}, allows at most ${max}`,
    };
  }
  return MATCHED;
}

function priceInRange(price: Money, min?: Threshold, max?: Threshold): boolean {
  const low = min && compareAmount(price, min);
  const high = max && compareAmount(price, max);
  if (low && (!low.ok || low.sign < 0)) return false;
  if (high && (!high.ok || high.sign > 0)) return false;
  return true;
}

function describeRange(min?: Threshold, max?: Threshold): string {
  const shown = (threshold: Threshold) => threshold.values.map(describeMoney).join(" or ");
  if (min && max) return `between ${shown(min)} and ${shown(max)}`;
  if (min) return `of at least ${shown(min)}`;
  if (max) return `of at most ${shown(max)}`;
  return "in range";
}

/** Whether a planned step is held to a cooldown (its rule's, or its kind's). */
export function underCooldown(
  rules: RuleSet,
  step: { readonly ruleId: string; readonly kind: StepKind },
): { readonly byRule: boolean; readonly byKind: boolean } {
  const rule = rules.rules.find((candidate) => candidate.id === step.ruleId);
  return {
    byRule: rule?.cooldown !== undefined,
    byKind: rules.cooldowns[step.kind] !== undefined,
  };
}

/** A planned step as the customer's cooldowns remember it (CustomerHistoryStore.rememberSteps). */
export interface CooldownStep {
  readonly stepId: string;
  readonly ruleId: string;
  readonly kind: StepKind;
  /** Epoch ms. */
  readonly dueAt: number;
  /** Held by its rule's cooldown. */
  readonly byRule: boolean;
  /** Held by its kind's cooldown. */
  readonly byKind: boolean;
}

/**
 * The steps of a plan as the customer's cooldowns remember them, each with the cooldowns that hold
 * it (underCooldown): what intake and a re-plan remember, `of` reading each one's kind and due
 * time (epoch ms).
 */
export function cooldownSteps<S extends { readonly stepId: string; readonly ruleId: string }>(
  rules: RuleSet,
  steps: readonly S[],
  of: (step: S) => { readonly kind: StepKind; readonly dueAt: number },
): CooldownStep[] {
  return steps.map((step) => {
    const { kind, dueAt } = of(step);
    return {
      stepId: step.stepId,
      ruleId: step.ruleId,
      kind,
      dueAt,
      ...underCooldown(rules, { ruleId: step.ruleId, kind }),
    };
  });
}

/**
 * The earliest due time (epoch ms) of a remembered step that can still hold back a step planned
 * from `now` on: the longest cooldown before now, and a week more as a margin (a cooldown is
 * counted in the customer's calendar, whose date may be a day ahead of or behind UTC's).
 * Steps due before it need not be remembered any longer.
 */
export function cooldownReach(rules: RuleSet, now: DateTime): number {
  const spans = [
    ...rules.rules.flatMap((rule) => (rule.cooldown ? [rule.cooldown] : [])),
    ...Object.values(rules.cooldowns).filter((span) => span !== undefined),
  ];
  return Math.min(
    now.toMillis(),
    ...spans.map((span) => now.toUTC().minus(span).minus({ days: 7 }).toMillis()),
  );
}

/** Whether any rule or kind has a cooldown (then planning needs the customer's recent steps). */
export function hasCooldowns(rules: RuleSet): boolean {
  return (
    rules.rules.some((rule) => rule.cooldown !== undefined) ||
    Object.values(rules.cooldowns).some((span) => span !== undefined)
  );
}
