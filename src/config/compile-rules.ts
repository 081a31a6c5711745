import type { Duration } from "luxon";
import type { Channel } from "../domain/events.js";
import { type Money, type Rates, type Threshold, toMinorUnits } from "../domain/money.js";
import type {
  Condition,
  FrequencyCap,
  Rule,
  RuleSet,
  SendWindow,
  StepSpec,
  Weekday,
} from "../domain/rules.js";
import { PRICED_CHANNELS, type PriceTable, parseMicros } from "../domain/spend.js";
import { fallbackStepId } from "../domain/step-ref.js";
import {
  addressLines,
  type ConditionInput,
  type RulesFile,
  type ThresholdInput,
} from "./rules-file.js";

/** A problem found after the shape checks, at a path into the rules file. */
export interface CompileProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

export type CompileResult =
  | { ok: true; rules: RuleSet }
  | { ok: false; problems: CompileProblem[] };

/**
 * Turns a shape-checked rules file into the planner's RuleSet: group names resolved to
 * categories, amounts converted to minor units of their currency, rules put in priority order.
 */
export function compileRules(file: RulesFile, version: string): CompileResult {
  const problems: CompileProblem[] = [];
  const groups = new Map(
    Object.entries(file.groups).map(([name, members]) => [
      name,
      members.map((c) => c.toLowerCase()),
    ]),
  );

  const rates: Rates = {
    base: file.defaults.currency,
    toBase: new Map(Object.entries(file.currencies.rates)),
    ...(file.currencies.asOf && { asOf: file.currencies.asOf }),
  };
  /** A threshold in minor units: one amount in the condition's currency, or one per currency. */
  const money = (
    value: ThresholdInput | undefined,
    currency: string | undefined,
    path: (string | number)[],
  ): Threshold | undefined => {
    if (value === undefined) return undefined;
    const given: [string, number | string, (string | number)[]][] =
      typeof value === "object"
        ? Object.entries(value).map(([code, amount]) => [code, amount, [...path, code]])
        : [[currency ?? file.defaults.currency, value, path]];
    const values: Money[] = [];
    for (const [code, amount, at] of given) {
      const result = toMinorUnits(amount, code);
      if (!result.ok) problems.push({ path: at, message: result.problem });
      else values.push({ minor: result.minor, currency: code });
    }
    return values.length === given.length ? { values, rates } : undefined;
  };

  const categorySet = (names: string[]) => {
    const set = new Set<string>();
    for (const name of names) {
      const key = name.toLowerCase();
      for (const category of groups.get(key) ?? [key]) set.add(category);
    }
    return { set, label: names.join(", ") };
  };

  const condition = (input: ConditionInput | undefined, path: (string | number)[]): Condition => {
    const parts: Condition[] = [];
    if (!input) return { type: "all", conditions: parts };
    if (input.anyItem) {
      const { categories, minPrice, maxPrice, currency } = input.anyItem;
      const resolved = categories ? categorySet(categories) : undefined;
      parts.push({
        type: "anyItem",
        label: resolved?.label ?? "any category",
        ...(resolved && { categories: resolved.set }),
        ...optional("minPrice", money(minPrice, currency, [...path, "anyItem", "minPrice"])),
        ...optional("maxPrice", money(maxPrice, currency, [...path, "anyItem", "maxPrice"])),
      });
    }
    if (input.allItems) {
      const { set, label } = categorySet(input.allItems.categories);
      parts.push({ type: "allItems", categories: set, label });
    }
    if (input.noItem) {
      const { set, label } = categorySet(input.noItem.categories);
      parts.push({ type: "noItem", categories: set, label });
      // Every purchase has an item: one that must be in categories noItem leaves out is none.
      for (const key of ["allItems", "anyItem"] as const) {
        const needed = input[key]?.categories;
        if (!needed || ![...categorySet(needed).set].every((c) => set.has(c))) continue;
        problems.push({
          path: [...path, "noItem"],
          message: `noItem leaves out every category ${key} needs (${needed.join(", ")}), so this condition matches nothing: remove one of them or change its categories`,
        });
      }
    }
    if (input.total) {
      const { min, max, currency } = input.total;
      parts.push({
        type: "total",
        ...optional("min", money(min, currency, [...path, "total", "min"])),
        ...optional("max", money(max, currency, [...path, "total", "max"])),
      });
    }
    if (input.stores) parts.push({ type: "store", storeIds: new Set(input.stores) });
    if (input.customer) parts.push({ type: "history", ...input.customer });
    if (input.any) {
      parts.push({
        type: "any",
        conditions: input.any.map((c, i) => condition(c, [...path, "any", i])),
      });
    }
    if (input.all) {
      parts.push({
        type: "all",
        conditions: input.all.map((c, i) => condition(c, [...path, "all", i])),
      });
    }
    if (parts.length === 1 && parts[0]) return parts[0];
    return { type: "all", conditions: parts };
  };

  file.rules.forEach((rule, index) => {
    rule.steps.forEach((step, stepIndex) => {
      if (!step.sendWindow) return;
      problems.push(
        ...windowWideningProblems(step.sendWindow, file.sendWindows[step.channel], step.channel, [
          "rules",
          index,
          "steps",
          stepIndex,
          "sendWindow",
        ]),
      );
    });
  });

  const rules: Rule[] = file.rules.map((rule, index) => ({
    id: rule.id,
    ...optional("description", rule.description),
    priority: rule.priority,
    final: rule.final,
    when: condition(rule.when, ["rules", index, "when"]),
    ...(rule.cooldown && { cooldown: rule.cooldown }),
    ...(rule.coalesce && { coalesce: rule.coalesce }),
    ...(rule.discount && {
      discount: {
        codePrefix: rule.discount.codePrefix ?? file.defaults.discount.codePrefix,
        percent: rule.discount.percent ?? file.defaults.discount.percent,
        validFor: rule.discount.validFor ?? file.defaults.discount.validFor,
      },
    }),
    steps: rule.steps.flatMap((step): StepSpec[] => {
      const spec: StepSpec = {
        id: step.id ?? step.kind,
        kind: step.kind,
        channel: step.channel,
        template: step.template,
        delay: step.delay,
        purpose: step.purpose ?? (step.kind === "discount" ? "marketing" : "transactional"),
        ...optional(
          "sendWindow",
          step.sendWindow && {
            ...(file.sendWindows[step.channel] satisfies SendWindow),
            ...step.sendWindow,
          },
        ),
        ...(step.kind === "thank-you" && rule.coalesce && { coalesce: rule.coalesce }),
      };
      if (!step.fallback) return [spec];
      const fallback: StepSpec = {
        id: fallbackStepId(spec.id),
        kind: spec.kind,
        channel: step.fallback.channel,
        template: step.fallback.template,
        delay: spec.delay.plus(step.fallback.after),
        purpose: spec.purpose,
        fallbackOf: spec.id,
        fallbackAfter: step.fallback.after,
      };
      return [spec, fallback];
    }),
  }));
  // Stable sort: equal priorities keep the order of the file.
  rules.sort((a, b) => b.priority - a.priority);
  // A final rule that matches every purchase stops every rule below it.
  const catchAll = rules.findIndex(
    (rule) => rule.final && rule.when.type === "all" && rule.when.conditions.length === 0,
  );
  const shadowed = catchAll < 0 ? [] : rules.slice(catchAll + 1).map((rule) => rule.id);
  if (shadowed.length > 0) {
    const id = rules[catchAll]?.id;
    problems.push({
      path: ["rules", file.rules.findIndex((rule) => rule.id === id), "final"],
      message: `rule ${id} is final and has no when, so it matches every purchase and the rules below it never apply (${shadowed.join(", ")}): give it a when, a lower priority, or remove final`,
    });
  }

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    rules: {
      version,
      defaults: {
        timezone: file.defaults.timezone,
        currency: file.defaults.currency,
        locale: file.defaults.locale,
        discount: file.defaults.discount,
        transactionalNeedsConsent: file.defaults.transactionalNeedsConsent,
      },
      rates,
      attribution: { window: file.attribution.window },
      cooldowns: Object.fromEntries(
        Object.entries(file.cooldowns).filter(([, duration]) => duration !== undefined),
      ) as RuleSet["cooldowns"],
      sendWindows: file.sendWindows satisfies Record<Channel, SendWindow>,
      channels: file.channels,
      voiceCalls: {
        voices: file.channels.voice.voices,
        answeringMachine: file.channels.voice.answeringMachine,
        speech: file.channels.voice.speech,
      },
      spend: {
        prices: Object.fromEntries(
          PRICED_CHANNELS.flatMap((channel) => {
            const table = file.prices[channel];
            return table ? [[channel, priceTable(table)]] : [];
          }),
        ),
        budgets: Object.fromEntries(
          PRICED_CHANNELS.flatMap((channel) => {
            const budget = file.budget[channel];
            return budget
              ? [
                  [
                    channel,
                    {
                      monthlyMicros: parseMicros(budget.monthly) ?? 0,
                      transactional: budget.transactional,
                    },
                  ],
                ]
              : [];
          }),
        ),
        estimatedCallMinutes: file.prices.callMinutes,
      },
      frequencyCaps: {
        email: file.frequencyCaps.email.map(toCap),
        sms: file.frequencyCaps.sms.map(toCap),
        voice: file.frequencyCaps.voice.map(toCap),
      },
      whenCapped: file.whenCapped,
      shopName: file.shop.name,
      shopAddress: file.shop.address === undefined ? [] : addressLines(file.shop.address),
      optOutConfirmation: file.optOutConfirmation,
      owners: file.owners.map((owner) => ({
        name: owner.name,
        email: owner.email,
        timezone: owner.timezone,
        frequency: owner.frequency,
        weekday: (["mon", "tue", "wed", "thu", "fri", "sat", "sun"].indexOf(owner.day) +
          1) as Weekday,
        time: owner.time,
        ...(owner.stores && { stores: owner.stores }),
        alerts: owner.alerts,
        alertWindow: owner.alertWindow,
      })),
      holidays: new Set(file.holidays),
      gracePeriods: file.gracePeriods,
      rules,
    },
  };
}

const WEEKDAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;

function clock(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}

/**
 * A step's window narrows its channel's (sendWindows: the hours a customer may be contacted); it
 * must not open hours, days or holidays the channel keeps shut.
 */
function windowWideningProblems(
  step: Partial<SendWindow> & { startMinute: number; endMinute: number },
  channelWindow: SendWindow,
  channel: Channel,
  path: (string | number)[],
): CompileProblem[] {
  const problems: CompileProblem[] = [];
  const days = [...channelWindow.days].sort().map((day) => WEEKDAY_NAMES[day - 1]);
  const channelText = `sendWindows.${channel} (${clock(channelWindow.startMinute)}–${clock(channelWindow.endMinute)}, ${days.join(", ")})`;
  const narrowOnly = `a step's window may only narrow its channel's ${channelText}`;
  if (step.startMinute < channelWindow.startMinute) {
    problems.push({
      path: [...path, "start"],
      message: `${narrowOnly}: expected start at ${clock(channelWindow.startMinute)} or later, got ${clock(step.startMinute)}`,
    });
  }
  if (step.endMinute > channelWindow.endMinute) {
    problems.push({
      path: [...path, "end"],
      message: `${narrowOnly}: expected end at ${clock(channelWindow.endMinute)} or earlier, got ${clock(step.endMinute)}`,
    });
  }
  const opened = [...(step.days ?? [])]
    .filter((day) => !channelWindow.days.has(day))
    .sort()
    .map((day) => WEEKDAY_NAMES[day - 1]);
  if (opened.length > 0) {
    problems.push({
      path: [...path, "days"],
      message: `${narrowOnly}: expected days among ${days.join(", ")}, got ${opened.join(", ")} too`,
    });
  }
  if (step.closedOnHolidays === false && channelWindow.closedOnHolidays) {
    problems.push({
      path: [...path, "closedOnHolidays"],
      message: `${narrowOnly}: sendWindows.${channel} is closed on holidays, so the step cannot open them; remove closedOnHolidays: false`,
    });
  }
  return problems;
}

/** `{ GB: "0.04", other: "0.10" }` → micros per unit by country. */
function priceTable(table: Record<string, string>): PriceTable {
  const byCountry = new Map<string, number>();
  let other: number | undefined;
  for (const [country, text] of Object.entries(table)) {
    const micros = parseMicros(text) ?? 0;
    if (country === "other") other = micros;
    else byCountry.set(country, micros);
  }
  return { byCountry, ...(other !== undefined && { other }) };
}

function toCap(cap: { max: number; per: Duration }): FrequencyCap {
  return { max: cap.max, perMs: cap.per.toMillis() };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]: V });
}
