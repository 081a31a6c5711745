import { DateTime, Duration, IANAZone } from "luxon";
import { z } from "zod";
import { editDistance } from "../domain/edit-distance.js";
import { CHANNELS } from "../domain/events.js";
import { isCurrencyCode, toMinorUnits } from "../domain/money.js";
import {
  OPT_OUT_CONFIRMATION_TEMPLATE,
  PURPOSES,
  STEP_KINDS,
  type Weekday,
} from "../domain/rules.js";
import { fallbackStepId } from "../domain/step-ref.js";
import { LOCALE_TAG } from "../templates/read-template-files.js";
import { canonicalLocale } from "../templates/template-set.js";

/** The shop's name when the rules do not give one. */
export const DEFAULT_SHOP_NAME = "Your shop";

/**
 * The schema of config/rules.yaml as operators write it. Objects are strict, so a misspelt key is
 * an error instead of a silently ignored setting. The JSON Schema for editors is generated from it.
 */

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
const ALL_DAYS = [...WEEKDAYS];
const SLUG = /^[a-z0-9][a-z0-9-]*$/;

const slug = (what: string) =>
  z
    .string({ error: `expected ${what}: lower-case letters, digits and dashes` })
    .max(64, { error: `expected ${what} of at most 64 characters` })
    .regex(SLUG, {
      error: `expected ${what}: lower-case letters, digits and dashes, such as thank-you`,
    });

/**
 * An ISO-8601 duration of whole numbers with at least one of them: `P` or `PT` alone (a half-typed
 * `P3M`) is not one, though luxon reads it as zero.
 */
const ISO_DURATION = /^P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/i;
/** Longer than any follow-up, window or cap needs: what a typo of a few digits too many looks like. */
const LONGEST_DURATION_YEARS = 10;

/** An ISO-8601 duration; `positive` refuses a zero one (`PT0S`, `P0D`) too. */
const durationSchema = (positive: boolean) =>
  z
    .string({ error: "expected an ISO-8601 duration such as PT2H, P14D or P3M" })
    .max(40)
    .transform((text, ctx) => {
      const duration = Duration.fromISO(text);
      if (!ISO_DURATION.test(text) || !duration.isValid) {
        ctx.addIssue({
          code: "custom",
          message: `expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got ${JSON.stringify(text)}`,
          input: text,
        });
        return z.NEVER;
      }
      const end = DateTime.fromMillis(0, { zone: "UTC" }).plus(duration);
      if (!end.isValid || end.year - 1970 >= LONGEST_DURATION_YEARS) {
        ctx.addIssue({
          code: "custom",
          message: `expected a duration shorter than ${LONGEST_DURATION_YEARS} years, got ${JSON.stringify(text)}`,
          input: text,
        });
        return z.NEVER;
      }
      if (positive && end.toMillis() <= 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected a duration longer than zero, such as PT1H, got ${JSON.stringify(text)}`,
          input: text,
        });
        return z.NEVER;
      }
      return duration;
    });

const isoDuration = durationSchema(false);
/**
 * A duration for which zero means nothing sensible: a grace period of zero skips every step of
 * its kind as past due, a cap per zero caps nothing, a code valid for zero is expired when sent,
 * a cooldown or coalescing window of zero does nothing.
 */
const positiveDuration = durationSchema(true);

const TIME_OF_DAY = /^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/;

const timeOfDay = z
  .string({ error: 'expected a local time "HH:MM" between "00:00" and "24:00"' })
  .regex(TIME_OF_DAY, {
    error: (issue) =>
      `expected a local time "HH:MM" between "00:00" and "24:00", got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => Number(text.slice(0, 2)) * 60 + Number(text.slice(3, 5)));

const weekdays = z
  .array(z.enum(WEEKDAYS, { error: "expected a weekday: mon, tue, wed, thu, fri, sat or sun" }))
  .min(1, { error: "expected at least one weekday" })
  .max(7)
  .transform((days) => new Set(days.map((d) => (WEEKDAYS.indexOf(d) + 1) as Weekday)));

const sendWindow = z
  .strictObject({
    start: timeOfDay,
    end: timeOfDay,
    days: weekdays.prefault(ALL_DAYS),
    closedOnHolidays: z.boolean().default(true),
  })
  .transform(({ start, end, days, closedOnHolidays }) => ({
    startMinute: start,
    endMinute: end,
    days,
    closedOnHolidays,
  }));

/**
 * A step's own window: the hours it names, and the days and holidays it names; what it leaves out
 * is its channel's (compile-rules.ts), so narrowing the hours does not open Sundays.
 */
const stepSendWindow = z
  .strictObject({
    start: timeOfDay,
    end: timeOfDay,
    days: weekdays.optional(),
    closedOnHolidays: z.boolean().optional(),
  })
  .transform(({ start, end, days, closedOnHolidays }) => ({
    startMinute: start,
    endMinute: end,
    ...(days && { days }),
    ...(closedOnHolidays !== undefined && { closedOnHolidays }),
  }));

const amount = z.union([z.number().nonnegative(), z.string().max(32)], {
  error: "expected a non-negative amount such as 500 or 49.99",
});

/**
 * A currency code as ISO 4217 writes it. A lower-case one (`eur`) is refused rather than read as
 * EUR: every code in the file, and in the events, compares as written.
 */
const currency = z.string().refine(isCurrencyCode, {
  error: (issue) => {
    const upper = typeof issue.input === "string" ? issue.input.toUpperCase() : "";
    return isCurrencyCode(upper)
      ? `expected three capital letters, ISO 4217, e.g. EUR: write ${upper}, got ${JSON.stringify(issue.input)}`
      : `expected an ISO 4217 currency code such as EUR, got ${JSON.stringify(issue.input)}`;
  },
});

/** A threshold: one amount, or one per currency (`{ GBP: "50", USD: "60" }`). */
const threshold = z.union(
  [
    amount,
    z
      .record(currency, amount)
      .refine((map) => Object.keys(map).length > 0, { error: "expected at least one currency" }),
  ],
  {
    error: 'expected an amount such as 500, or one per currency such as { GBP: "50", USD: "60" }',
  },
);

const RATES_DATE = "expected the date of the rates, YYYY-MM-DD";

/** An exchange rate as an exact decimal string: YAML numbers are binary floats. */
const rate = z
  .string({ error: 'expected a quoted decimal rate such as "0.79" (YAML numbers are not exact)' })
  .regex(/^\d{1,9}(\.\d{1,9})?$/, {
    error:
      'expected a decimal rate above 0 with at most 9 digits before and after the point, such as "0.79"',
  })
  .refine((text) => /[1-9]/.test(text), { error: "expected a rate above 0" });

/**
 * A name matched against what events carry, which are read trimmed: so is this one, else a quoted
 * `"laptops "` would silently never match.
 */
const trimmedName = (what: string, max: number) =>
  z
    .string({ error: `expected ${what}` })
    .trim()
    .min(1, { error: `expected ${what}, got an empty or blank one` })
    .max(max, { error: `expected ${what} of at most ${max} characters` });

const categories = z
  .array(trimmedName("a category name", 100), {
    error: "expected a list of category or group names",
  })
  .min(1, { error: "expected at least one category or group name" })
  .max(1000);

/** An amount, or amounts per currency, as the rules file gives them. */
export type ThresholdInput = number | string | Record<string, number | string>;

/** A condition; several keys in one condition must all hold. */
export interface ConditionInput {
  anyItem?: {
    categories?: string[];
    minPrice?: ThresholdInput;
    maxPrice?: ThresholdInput;
    currency?: string;
  };
  allItems?: { categories: string[] };
  noItem?: { categories: string[] };
  total?: { min?: ThresholdInput; max?: ThresholdInput; currency?: string };
  stores?: string[];
  customer?: { minPreviousPurchases?: number; maxPreviousPurchases?: number };
  any?: ConditionInput[];
  all?: ConditionInput[];
}

const purchaseCount = z.number().int({ error: "expected a whole number" }).min(0).max(1_000_000);

export const conditionSchema: z.ZodType<ConditionInput> = z.lazy(() =>
  z.strictObject({
    anyItem: z
      .strictObject({
        categories: categories.optional(),
        minPrice: threshold.optional(),
        maxPrice: threshold.optional(),
        currency: currency.optional(),
      })
      .optional(),
    allItems: z.strictObject({ categories }).optional(),
    noItem: z.strictObject({ categories }).optional(),
    total: z
      .strictObject({
        min: threshold.optional(),
        max: threshold.optional(),
        currency: currency.optional(),
      })
      .optional(),
    stores: z.array(trimmedName("a store id", 200)).min(1).max(1000).optional(),
    customer: z
      .strictObject({
        minPreviousPurchases: purchaseCount.optional(),
        maxPreviousPurchases: purchaseCount.optional(),
      })
      .optional(),
    any: z.array(conditionSchema).min(1).max(50).optional(),
    all: z.array(conditionSchema).min(1).max(50).optional(),
  }),
);

const stepSchema = z.strictObject({
  id: slug("a step id").optional(),
  kind: z.enum(STEP_KINDS, { error: "expected a kind: thank-you, check-in, discount or custom" }),
  channel: z.enum(CHANNELS, { error: "expected a channel: email, sms or voice" }),
  template: slug("a template id"),
  delay: isoDuration,
  purpose: z.enum(PURPOSES, { error: "expected transactional or marketing" }).optional(),
  sendWindow: stepSendWindow.optional(),
  /** Voice steps only: the step that goes out instead when the call is not answered. */
  fallback: z
    .strictObject({
      channel: z.enum(["email", "sms"], { error: "expected the fallback's channel: email or sms" }),
      template: slug("a template id"),
      after: isoDuration,
    })
    .optional(),
});

const codePrefix = z
  .string()
  .regex(/^[A-Z0-9]{1,12}$/, { error: "expected 1 to 12 upper-case letters or digits" });
const discountPercent = z
  .number({ error: "expected a whole percent from 1 to 100" })
  .int({ error: "expected a whole percent from 1 to 100" })
  .min(1)
  .max(100);

const ruleSchema = z.strictObject({
  id: slug("a rule id"),
  description: z.string().max(500).optional(),
  priority: z.number().int({ error: "expected a whole number" }).min(-1000).max(1000).default(0),
  final: z.boolean({ error: "expected true or false" }).default(false),
  when: conditionSchema.optional(),
  steps: z.array(stepSchema).max(20).default([]),
  /** No step of this rule for a customer within this long of the last one planned for them. */
  cooldown: positiveDuration.optional(),
  /**
   * Purchases by one customer within this long of their first one share one thank-you, which
   * lists every order and goes out no sooner than the end of the window.
   */
  coalesce: positiveDuration.optional(),
  /** This rule's discount codes, where they differ from defaults.discount. */
  discount: z
    .strictObject({
      codePrefix: codePrefix.optional(),
      percent: discountPercent.optional(),
      validFor: positiveDuration.optional(),
    })
    .optional(),
});

/**
 * A channel's rate. Below one message every 1000 seconds sends would be spaced hours to months
 * apart (and a rate near zero overflows the rate limiter's slot arithmetic in Redis).
 */
const RATE_RANGE =
  "expected messages per second from 0.001 (one every 1000 seconds) to 10000, such as 5 or 0.5";

const channelSettings = z.strictObject({
  ratePerSecond: z
    .number({ error: "expected messages per second, such as 5 or 0.5" })
    .min(0.001, { error: RATE_RANGE })
    .max(10_000, { error: RATE_RANGE }),
  maxSegments: z
    .number()
    .int({ error: "expected a whole number of SMS segments" })
    .min(1)
    .max(10)
    .default(3),
});

/** `channels.voice`: how calls are spoken and what happens at an answering machine. */
const voiceChannelSettings = channelSettings.extend({
  voices: z
    .strictObject({
      en: z.string().min(1).max(60).optional(),
      de: z.string().min(1).max(60).optional(),
    })
    .default({}),
  answeringMachine: z
    .enum(["voicemail", "hangup"], { error: "expected voicemail or hangup" })
    .default("voicemail"),
  speech: z.boolean({ error: "expected true or false" }).default(false),
});

/** A price or a budget as an exact decimal string in the default currency. */
const price = z
  .string({ error: 'expected a quoted decimal amount such as "0.04" (YAML numbers are not exact)' })
  .regex(/^\d{1,9}(\.\d{1,6})?$/, {
    error: (issue) =>
      `expected a decimal amount with at most 6 decimals such as "0.04", got ${JSON.stringify(issue.input)}`,
  });

/** Prices per destination country (ISO 3166 alpha-2 such as GB) and for every `other` country. */
const priceTable = z.record(
  z.string().regex(/^(?:[A-Z]{2}|other)$/, {
    error: (issue) =>
      `expected a two-letter country code such as GB, or other, got ${JSON.stringify(issue.input)}`,
  }),
  price,
);

const budget = z.strictObject({
  monthly: price,
  /** Whether transactional steps (check-ins) continue once the budget is reached. */
  transactional: z
    .enum(["continue", "skip"], { error: "expected continue or skip" })
    .default("continue"),
});

const frequencyCap = z.strictObject({
  max: z.number().int({ error: "expected a whole number of messages" }).min(1).max(1000),
  per: positiveDuration,
});
const capList = z.array(frequencyCap).max(10);
const capAction = z.enum(["skip", "defer", "exempt"], {
  error: "expected skip, defer or exempt",
});

const ownerSchema = z.strictObject({
  name: z.string().min(1).max(100),
  email: z.email({ error: "expected the owner's email address" }).max(254),
  timezone: z.string().refine((zone) => IANAZone.isValidZone(zone), {
    error: (issue) =>
      `expected an IANA time zone name such as Europe/Berlin, got ${JSON.stringify(issue.input)}`,
  }),
  frequency: z.enum(["daily", "weekly"], { error: "expected daily or weekly" }),
  /** Weekly reports only: the local weekday they arrive on. */
  day: z
    .enum(WEEKDAYS, { error: "expected a weekday: mon, tue, wed, thu, fri, sat or sun" })
    .default("mon"),
  time: z
    .string()
    .regex(/^(?:[01]\d|2[0-3]):[0-5]\d$/, {
      error: 'expected a local time "HH:MM", such as "08:00"',
    })
    .default("08:00"),
  /** The stores (`store.id` of purchases) whose alerts this owner gets; absent: every store. */
  stores: z.array(trimmedName("a store id", 200)).min(1).max(100).optional(),
  /** Unhappy replies reach this owner by email within a minute. */
  alerts: z.boolean({ error: "expected true or false" }).default(false),
  /** Further alerts within this long after one are bundled into one email at its end. */
  alertWindow: isoDuration.prefault("PT15M"),
});

/** defaults.locale must name template files (en.text.liquid), so "english" is refused. */
const localeProblem = (issue: { input?: unknown }) =>
  `expected a locale such as en, de or en-GB (a language code of 2 or 3 letters, as template files are named: en.text.liquid), got ${JSON.stringify(issue.input)}`;

const DEFAULT_EMAIL_WINDOW = { start: "08:00", end: "21:00", days: ALL_DAYS };
const DEFAULT_PHONE_WINDOW = {
  start: "09:00",
  end: "20:00",
  days: ["mon", "tue", "wed", "thu", "fri", "sat"] as typeof ALL_DAYS,
};

/** The whole rules file. */
export const rulesFileSchema = z.strictObject({
  $schema: z.string().optional(),
  version: z.literal(1, { error: "expected version: 1" }),
  defaults: z.strictObject({
    timezone: z.string().refine((zone) => IANAZone.isValidZone(zone), {
      error: (issue) =>
        `expected an IANA time zone name such as Europe/Berlin, got ${JSON.stringify(issue.input)}`,
    }),
    currency,
    locale: z
      .string({ error: "expected a locale such as en, de or en-GB" })
      .max(35)
      .regex(LOCALE_TAG, { error: localeProblem, abort: true })
      .refine((tag) => canonicalLocale(tag) !== undefined, { error: localeProblem })
      .default("en"),
    transactionalNeedsConsent: z.boolean().default(false),
    discount: z
      .strictObject({
        codePrefix: codePrefix.default("THANKS"),
        percent: discountPercent.default(10),
        validFor: positiveDuration.prefault("P30D"),
      })
      .prefault({}),
  }),
  /** Per kind: no step of that kind for a customer within this long of the last one. */
  cooldowns: z
    .strictObject({
      "thank-you": positiveDuration.optional(),
      "check-in": positiveDuration.optional(),
      discount: positiveDuration.optional(),
      custom: positiveDuration.optional(),
    })
    .default({}),
  /**
   * Exchange rates into the default currency, for thresholds that do not name an order's
   * currency: `{ rates: { USD: "0.79" }, asOf: 2026-12-01 }` means 1 USD = 0.79 GBP.
   */
  currencies: z
    .strictObject({
      rates: z.record(currency, rate).default({}),
      asOf: z
        .union([z.iso.date({ error: RATES_DATE }), z.date()], { error: RATES_DATE })
        .transform((value) => (value instanceof Date ? value.toISOString().slice(0, 10) : value))
        .optional(),
    })
    .prefault({}),
  /** How long after a sent follow-up a purchase counts as brought back by it. */
  // P0D attributes only purchases that redeem a code a follow-up issued (no window after a send).
  attribution: z.strictObject({ window: isoDuration.prefault("P30D") }).prefault({}),
  groups: z
    .record(slug("a group name"), categories, {
      error: "expected a map of group name to categories",
    })
    .default({}),
  sendWindows: z
    .strictObject({
      email: sendWindow.prefault(DEFAULT_EMAIL_WINDOW),
      sms: sendWindow.prefault(DEFAULT_PHONE_WINDOW),
      voice: sendWindow.prefault(DEFAULT_PHONE_WINDOW),
    })
    .prefault({}),
  channels: z
    .strictObject({
      email: channelSettings.prefault({ ratePerSecond: 20 }),
      sms: channelSettings.prefault({ ratePerSecond: 5 }),
      voice: voiceChannelSettings.prefault({ ratePerSecond: 1 }),
    })
    .prefault({}),
  frequencyCaps: z
    .strictObject({
      email: capList.prefault([
        { max: 1, per: "PT24H" },
        { max: 3, per: "P7D" },
      ]),
      sms: capList.prefault([
        { max: 1, per: "PT24H" },
        { max: 2, per: "P7D" },
      ]),
      voice: capList.prefault([{ max: 1, per: "P7D" }]),
    })
    .prefault({}),
  /** What an SMS segment and a call minute cost, per destination country, in the default currency. */
  prices: z
    .strictObject({
      sms: priceTable.optional(),
      voice: priceTable.optional(),
      /** How long a call is assumed to last where its real duration is not known (plan, simulate). */
      callMinutes: z.number().int().min(1).max(60).default(1),
    })
    .prefault({}),
  /** Monthly spend limits per channel (calendar months in the default time zone). */
  budget: z.strictObject({ sms: budget.optional(), voice: budget.optional() }).default({}),
  whenCapped: z
    .strictObject({
      "thank-you": capAction.default("exempt"),
      "check-in": capAction.default("defer"),
      discount: capAction.default("defer"),
      custom: capAction.default("defer"),
    })
    .prefault({}),
  shop: z
    .strictObject({
      name: z.string().min(1).max(100),
      /** Postal address shown in marketing emails; lines separated by commas or line breaks. */
      address: z
        .string({ error: 'expected the postal address, such as "1 High Street, London N1 1AA"' })
        .max(500, { error: "expected a postal address of at most 500 characters" })
        .refine((text) => addressLines(text).length > 0, {
          error:
            'expected the postal address, lines separated by commas, such as "1 High Street, London N1 1AA"',
        })
        .optional(),
    })
    .prefault({ name: DEFAULT_SHOP_NAME }),
  /** Whether a number that texts STOP gets one SMS confirming it will get no more messages. */
  optOutConfirmation: z.boolean({ error: "expected true or false" }).default(true),
  owners: z.array(ownerSchema).max(50).default([]),
  holidays: z
    .array(z.iso.date({ error: "expected a date YYYY-MM-DD" }))
    .max(1000)
    .default([]),
  gracePeriods: z
    .strictObject({
      "thank-you": positiveDuration.prefault("P2D"),
      "check-in": positiveDuration.prefault("P14D"),
      discount: positiveDuration.prefault("P7D"),
      custom: positiveDuration.prefault("P1D"),
    })
    .prefault({}),
  rules: z.array(ruleSchema).min(1, { error: "expected at least one rule" }).max(500),
});

export type RulesFile = z.output<typeof rulesFileSchema>;

/** The lines of a postal address written on one line with commas, or on several. */
export function addressLines(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** A problem that involves more than one field, at a path into the rules file. */
export interface CrossFieldProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

/**
 * Checks that span fields (duplicate ids, rules that do nothing, windows that close before they
 * open). They read the raw data defensively so that they report even when other parts of the
 * file are malformed: the operator sees every problem in one run.
 */
export function crossFieldProblems(raw: unknown): CrossFieldProblem[] {
  const problems: CrossFieldProblem[] = [];
  const root = asRecord(raw);
  const windows = asRecord(root?.sendWindows);
  for (const [channel, window] of Object.entries(windows ?? {})) {
    checkWindow(window, ["sendWindows", channel], problems);
  }
  const rules = Array.isArray(root?.rules) ? root.rules : [];
  const defaultCurrency = asRecord(root?.defaults)?.currency;
  rules.forEach((rule, index) => {
    eachCondition(asRecord(rule)?.when, ["rules", index, "when"], (condition, path) => {
      checkAmounts(condition, path, defaultCurrency, problems);
      checkRanges(condition, path, defaultCurrency, problems);
      checkCurrencyUsed(condition, path, problems);
    });
  });
  const groupNames = Object.keys(asRecord(root?.groups) ?? {});
  // A group lists categories: a group named in another is not looked into (it would match nothing).
  for (const [group, listed] of Object.entries(asRecord(root?.groups) ?? {})) {
    if (!Array.isArray(listed)) continue;
    listed.forEach((name, i) => {
      if (typeof name !== "string") return;
      const key = name.trim().toLowerCase();
      if (key !== group && groupNames.includes(key))
        problems.push({
          path: ["groups", group, i],
          message: `${JSON.stringify(name)} is a group: a group lists categories, so list ${JSON.stringify(name)}'s categories here instead`,
        });
    });
  }
  rules.forEach((rule, index) => {
    eachCondition(asRecord(rule)?.when, ["rules", index, "when"], (condition, path) =>
      checkGroupNames(condition, path, groupNames, problems),
    );
  });
  const firstUse = new Map<unknown, number>();
  rules.forEach((value, index) => {
    const rule = asRecord(value);
    if (!rule) return;
    const first = firstUse.get(rule.id);
    if (typeof rule.id === "string" && first !== undefined) {
      problems.push({
        path: ["rules", index, "id"],
        message: `duplicate rule id ${JSON.stringify(rule.id)}: rules[${first}] already uses it`,
      });
    } else firstUse.set(rule.id, index);
    const steps = Array.isArray(rule.steps) ? rule.steps : [];
    if (steps.length === 0 && rule.final !== true) {
      problems.push({
        path: ["rules", index, "steps"],
        message:
          "a rule without steps does nothing: add steps, or set final: true to stop the rules below it",
      });
    }
    const stepIds = new Set<unknown>();
    steps.forEach((stepValue, stepIndex) => {
      const step = asRecord(stepValue);
      if (!step) return;
      const stepId = step.id ?? step.kind;
      if (stepIds.has(stepId)) {
        problems.push({
          path: ["rules", index, "steps", stepIndex, step.id === undefined ? "kind" : "id"],
          message: `rule ${String(rule.id)} already has a step with the id ${JSON.stringify(stepId)}: give each step a distinct id`,
        });
      }
      stepIds.add(stepId);
      if (step.fallback !== undefined && step.channel !== "voice") {
        problems.push({
          path: ["rules", index, "steps", stepIndex, "fallback"],
          message: `only a voice step can have a fallback (this step sends ${String(step.channel)}); remove fallback or make the step a call`,
        });
      }
      if (step.fallback !== undefined) {
        const fallbackId = fallbackStepId(String(stepId));
        if (stepIds.has(fallbackId)) {
          problems.push({
            path: ["rules", index, "steps", stepIndex, "fallback"],
            message: `the fallback is planned as step ${JSON.stringify(fallbackId)}, which another step of rule ${String(rule.id)} already uses`,
          });
        }
        stepIds.add(fallbackId);
      }
      if (step.template === OPT_OUT_CONFIRMATION_TEMPLATE) {
        problems.push({
          path: ["rules", index, "steps", stepIndex, "template"],
          message: `${OPT_OUT_CONFIRMATION_TEMPLATE} is the SMS that confirms an opt-out (optOutConfirmation); a step cannot send it, give the step another template`,
        });
      }
      checkWindow(step.sendWindow, ["rules", index, "steps", stepIndex, "sendWindow"], problems);
    });
    if (
      rule.coalesce !== undefined &&
      !steps.some((step) => asRecord(step)?.kind === "thank-you")
    ) {
      problems.push({
        path: ["rules", index, "coalesce"],
        message: `coalesce joins thank-yous, and rule ${String(rule.id)} has no thank-you step: remove coalesce or add one`,
      });
    }
    if (rule.discount !== undefined && !steps.some((step) => asRecord(step)?.kind === "discount")) {
      problems.push({
        path: ["rules", index, "discount"],
        message: `discount sets the codes of discount steps, and rule ${String(rule.id)} has none: remove discount or add a discount step`,
      });
    }
  });
  // The default currency converts into itself at 1 whatever the file says: another rate for it
  // would be silently ignored.
  const rates = asRecord(asRecord(root?.currencies)?.rates);
  const ownRate = typeof defaultCurrency === "string" ? rates?.[defaultCurrency] : undefined;
  if (
    typeof ownRate === "string" &&
    /^\d+(\.\d+)?$/.test(ownRate) &&
    !/^0*1(\.0*)?$/.test(ownRate)
  ) {
    problems.push({
      path: ["currencies", "rates", String(defaultCurrency)],
      message: `${String(defaultCurrency)} is defaults.currency, which the rates convert into: its rate is 1, not ${ownRate}; remove it`,
    });
  }
  // A segment count only limits texts: on another channel it would be silently ignored.
  for (const channel of ["email", "voice"]) {
    if (asRecord(asRecord(root?.channels)?.[channel])?.maxSegments !== undefined) {
      problems.push({
        path: ["channels", channel, "maxSegments"],
        message: `maxSegments limits the length of texts, and channels.${channel} sends none: remove it, or set it under channels.sms`,
      });
    }
  }
  // Owner settings that only weekly reports or alerts read would be silently ignored otherwise.
  const owners = Array.isArray(root?.owners) ? root.owners : [];
  /** Owners by address: each address has one report schedule (ownerSchedulerId). */
  const ownerAt = new Map<string, number>();
  owners.forEach((value, index) => {
    const owner = asRecord(value);
    if (typeof owner?.email === "string") {
      const address = owner.email.trim().toLowerCase();
      const first = ownerAt.get(address);
      if (first === undefined) ownerAt.set(address, index);
      else
        problems.push({
          path: ["owners", index, "email"],
          message: `owners[${first}] has this address too, and an address has one report schedule: only one of them would get reports, on the other's schedule; give each owner their own address, or remove one`,
        });
    }
    if (owner?.day !== undefined && owner.frequency === "daily") {
      problems.push({
        path: ["owners", index, "day"],
        message:
          "day is the weekday of weekly reports, and this owner's are daily: remove day, or make frequency weekly",
      });
    }
    if (owner && owner.alerts !== true) {
      if (owner.stores !== undefined)
        problems.push({
          path: ["owners", index, "stores"],
          message:
            "stores chooses which alerts this owner gets, and alerts is not true: it would be ignored (reports cover every store); set alerts: true, or remove stores",
        });
      if (owner.alertWindow !== undefined)
        problems.push({
          path: ["owners", index, "alertWindow"],
          message:
            "alertWindow bundles this owner's alerts, and alerts is not true: it would be ignored; set alerts: true, or remove alertWindow",
        });
    }
  });
  const budgets = asRecord(root?.budget);
  const prices = asRecord(root?.prices);
  for (const channel of Object.keys(budgets ?? {})) {
    if (prices?.[channel] === undefined) {
      problems.push({
        path: ["budget", channel],
        message: `a ${channel} budget needs ${channel} prices to count spend against it: add prices.${channel}, such as { GB: "0.04", other: "0.10" }`,
      });
    }
  }
  return problems;
}

/** Calls `visit` with a rule's condition and every condition nested in its `any` and `all`. */
function eachCondition(
  value: unknown,
  path: (string | number)[],
  visit: (condition: Record<string, unknown>, path: (string | number)[]) => void,
): void {
  const condition = asRecord(value);
  if (!condition) return;
  visit(condition, path);
  for (const key of ["any", "all"] as const) {
    const list = condition[key];
    if (!Array.isArray(list)) continue;
    list.forEach((inner, i) => {
      eachCondition(inner, [...path, key, i], visit);
    });
  }
}

/**
 * An amount field as currency code → amount: one per currency named (`{GBP: "50", EUR: "60"}`),
 * or the one given, in `code` (the condition's currency or the default).
 */
function amountsByCurrency(given: unknown, code: unknown): Map<string, unknown> {
  const perCurrency = asRecord(given);
  if (perCurrency) return new Map(Object.entries(perCurrency));
  return typeof code === "string" ? new Map([[code, given]]) : new Map();
}

const AMOUNT_KEYS = { total: ["min", "max"], anyItem: ["minPrice", "maxPrice"] } as const;

/** Amounts must fit their currency (no 10.555 GBP), whether or not the rest of the file is valid. */
function checkAmounts(
  condition: Record<string, unknown>,
  path: (string | number)[],
  defaultCurrency: unknown,
  problems: CrossFieldProblem[],
): void {
  for (const [key, fields] of Object.entries(AMOUNT_KEYS)) {
    const part = asRecord(condition[key]);
    const code = part?.currency ?? defaultCurrency;
    if (!part || typeof code !== "string" || !isCurrencyCode(code)) continue;
    for (const field of fields) {
      // One amount in the condition's currency, or one per currency named.
      const perCurrency = asRecord(part[field]) !== undefined;
      for (const [currencyCode, amount] of amountsByCurrency(part[field], code)) {
        // Wrong types, negative numbers and .inf or .nan are the schema's to report; this checks
        // decimals only.
        const readable =
          typeof amount === "string" ||
          (typeof amount === "number" && amount >= 0 && Number.isFinite(amount));
        if (!readable) continue;
        if (!isCurrencyCode(currencyCode)) continue;
        const result = toMinorUnits(amount, currencyCode);
        const at = [...path, key, field, ...(perCurrency ? [currencyCode] : [])];
        if (!result.ok) problems.push({ path: at, message: result.problem });
      }
    }
  }
}

/** A condition's `currency` names the currency of its single amounts: without one it is ignored. */
function checkCurrencyUsed(
  condition: Record<string, unknown>,
  path: (string | number)[],
  problems: CrossFieldProblem[],
): void {
  for (const [key, fields] of Object.entries(AMOUNT_KEYS)) {
    const part = asRecord(condition[key]);
    if (part?.currency === undefined) continue;
    const single = fields.some((field) => part[field] !== undefined && !asRecord(part[field]));
    if (single) continue;
    const [low, high] = fields;
    problems.push({
      path: [...path, key, "currency"],
      message: `currency names the currency of a single ${low} or ${high}, and there is none here (amounts given per currency name their own): remove currency, or give ${low} or ${high}`,
    });
  }
}

const RANGE_KEYS = [
  ["total", "min", "max"],
  ["anyItem", "minPrice", "maxPrice"],
  ["customer", "minPreviousPurchases", "maxPreviousPurchases"],
] as const;

/** A lower bound above its upper bound matches nothing: almost surely a typo or swapped values. */
function checkRanges(
  condition: Record<string, unknown>,
  path: (string | number)[],
  defaultCurrency: unknown,
  problems: CrossFieldProblem[],
): void {
  for (const [key, minKey, maxKey] of RANGE_KEYS) {
    const part = asRecord(condition[key]);
    if (!part) continue;
    const refuse = (low: unknown, high: unknown, at: (string | number)[], unit: string) =>
      problems.push({
        path: at,
        message: `${key}.${minKey} (${String(low)}${unit}) is above ${key}.${maxKey} (${String(high)}${unit}), so this condition matches nothing: swap them or fix one`,
      });
    if (key === "customer") {
      const [low, high] = [part[minKey], part[maxKey]];
      // .inf and .nan are the schema's to report.
      if (Number.isFinite(low) && Number.isFinite(high) && Number(low) > Number(high)) {
        refuse(low, high, [...path, key, minKey], "");
      }
      continue;
    }
    const code = part.currency ?? defaultCurrency;
    const lows = amountsByCurrency(part[minKey], code);
    for (const [currencyCode, high] of amountsByCurrency(part[maxKey], code)) {
      const low = lows.get(currencyCode);
      if (!isCurrencyCode(currencyCode)) continue;
      // Malformed amounts are reported by the schema and checkAmounts.
      const minor = (amount: unknown) =>
        typeof amount === "string" || typeof amount === "number"
          ? toMinorUnits(amount, currencyCode)
          : undefined;
      const [lowMinor, highMinor] = [minor(low), minor(high)];
      if (lowMinor?.ok && highMinor?.ok && lowMinor.minor > highMinor.minor) {
        const perCurrency = asRecord(part[minKey]) !== undefined;
        refuse(
          low,
          high,
          [...path, key, minKey, ...(perCurrency ? [currencyCode] : [])],
          ` ${currencyCode}`,
        );
      }
    }
  }
}

const CATEGORY_KEYS = ["anyItem", "allItems", "noItem"] as const;

/**
 * A category name one or two letters away from a group name is almost surely a misspelt group:
 * taken as a plain category it would silently never match.
 */
function checkGroupNames(
  condition: Record<string, unknown>,
  path: (string | number)[],
  groups: readonly string[],
  problems: CrossFieldProblem[],
): void {
  for (const key of CATEGORY_KEYS) {
    const names = asRecord(condition[key])?.categories;
    if (!Array.isArray(names)) continue;
    names.forEach((name, i) => {
      const lower = typeof name === "string" ? name.trim().toLowerCase() : "";
      if (lower === "" || groups.includes(lower)) return;
      const near = groups.find((group) => editDistance(lower, group) <= 2);
      if (near) {
        problems.push({
          path: [...path, key, "categories", i],
          message: `${JSON.stringify(name)} is not a group; did you mean the group ${JSON.stringify(near)}?`,
        });
      }
    });
  }
}

function checkWindow(
  value: unknown,
  path: (string | number)[],
  problems: CrossFieldProblem[],
): void {
  const window = asRecord(value);
  const { start, end } = window ?? {};
  // Valid "HH:MM" strings compare like the times they name; malformed ones are reported elsewhere.
  const isTime = (value: unknown): value is string =>
    typeof value === "string" && TIME_OF_DAY.test(value);
  if (isTime(start) && isTime(end) && end <= start) {
    problems.push({
      path: [...path, "end"],
      message: `expected end (${end}) to be later than start (${start}); windows cannot span midnight`,
    });
  }
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}
