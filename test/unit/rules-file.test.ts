import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatProblem } from "../../src/config/config-files.js";
import { loadRules, parseRules } from "../../src/config/load-rules.js";
import { matchCondition, NO_HISTORY } from "../../src/domain/rules.js";
import {
  item,
  purchase,
  rulesFrom,
  rulesProblems,
  SHIPPED_CONFIG_DIR,
  shippedRules,
  yaml,
} from "../support/fixtures.js";

/**
 * One test per kind of rules-file error: the exact message, and file:line:column pointing at the
 * key the operator has to fix. Each case changes one line of BASE (line numbers in the comments).
 */
const BASE = yaml`
  version: 1
  defaults:
    timezone: Europe/London
    currency: GBP
  groups:
    big-ticket: [televisions, laptops]
  sendWindows:
    email: { start: "08:00", end: "21:00" }
  rules:
    - id: big-ticket
      when:
        anyItem: { categories: [big-ticket] }
      steps:
        - kind: thank-you
          channel: email
          template: thank-you
          delay: PT1H
        - kind: check-in
          channel: sms
          template: check-in
          delay: P3M
    - id: over-fifty
      when:
        total: { min: 50 }
      steps:
        - kind: thank-you
          channel: email
          template: thank-you
          delay: PT1H
`;

/** BASE with line `n` (1-based), which must read `was`, replaced by `now` (null removes it). */
function changeLine(n: number, was: string, now: string | null): string {
  const lines = BASE.split("\n");
  if (lines[n - 1] !== was) throw new Error(`line ${n} of BASE is ${JSON.stringify(lines[n - 1])}`);
  if (now === null) lines.splice(n - 1, 1);
  else lines[n - 1] = now;
  return lines.join("\n");
}

describe("the base file of these tests", () => {
  it("is valid and compiles to rules in priority order with groups resolved", () => {
    const rules = rulesFrom(BASE);
    expect(rules.rules.map((r) => [r.id, r.steps.map((s) => s.id)])).toEqual([
      ["big-ticket", ["thank-you", "check-in"]],
      ["over-fifty", ["thank-you"]],
    ]);
    expect(rules.rules[0]?.when).toEqual({
      type: "anyItem",
      label: "big-ticket",
      categories: new Set(["televisions", "laptops"]),
    });
    expect(rules.rules[1]?.when).toMatchObject({
      type: "total",
      min: { values: [{ minor: 5000, currency: "GBP" }] },
    });
    expect(rules.rules[0]?.steps[1]?.delay.toISO()).toBe("P3M");
    expect(rules.rules[0]?.steps.map((s) => s.purpose)).toEqual(["transactional", "transactional"]);
  });

  it("takes thresholds with the decimals of ISO 4217's minor unit (HUF 1299.50, IQD 5.5)", () => {
    const rules = rulesFrom(
      BASE.replace(
        "      total: { min: 50 }",
        '      total: { min: { HUF: "1299.50", IQD: "5.5" } }',
      ),
    );
    expect(rules.rules[1]?.when).toMatchObject({
      type: "total",
      min: {
        values: [
          { minor: 129_950, currency: "HUF" },
          { minor: 5_500, currency: "IQD" },
        ],
      },
    });
  });

  it("gets the documented defaults: email 08:00–21:00 daily, SMS and voice 09:00–20:00 Mon–Sat", async () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      rules:
        - id: one
          steps: [{ kind: discount, channel: email, template: t, delay: P1D }]
    `);
    const week = new Set([1, 2, 3, 4, 5, 6, 7]);
    const monToSat = new Set([1, 2, 3, 4, 5, 6]);
    expect(rules.sendWindows).toEqual({
      email: { startMinute: 480, endMinute: 1260, days: week, closedOnHolidays: true },
      sms: { startMinute: 540, endMinute: 1200, days: monToSat, closedOnHolidays: true },
      voice: { startMinute: 540, endMinute: 1200, days: monToSat, closedOnHolidays: true },
    });
    expect(rules.rules[0]?.steps[0]?.purpose).toBe("marketing");
    expect(rules.defaults.discount.codePrefix).toBe("THANKS");
    // The shipped file states the same windows explicitly.
    expect((await shippedRules()).sendWindows).toEqual(rules.sendWindows);
  });
});

describe("one located problem per kind of error", () => {
  it.each([
    [
      "YAML syntax error",
      changeLine(17, "        delay: PT1H", "        delay: PT1H: soon"),
      "rules.yaml:17:16 YAML: Nested mappings are not allowed in compact mappings",
    ],
    [
      "YAML duplicate key",
      changeLine(17, "        delay: PT1H", "        delay: PT1H\n        delay: PT2H"),
      'rules.yaml:18:9 rules[0].steps[0].delay: duplicate key "delay": a key may appear once in a mapping',
    ],
    [
      "unknown key, with a suggestion",
      changeLine(
        12,
        "      anyItem: { categories: [big-ticket] }",
        "      anyitem: { categories: [big-ticket] }",
      ),
      'rules.yaml:12:7 rules[0].when.anyitem: unknown key "anyitem"; did you mean "anyItem"?',
    ],
    [
      "unknown key, nothing close",
      changeLine(11, "    when:", "    colour: red\n    when:"),
      'rules.yaml:11:5 rules[0].colour: unknown key "colour"; allowed here: id, description, priority, final, when, steps, cooldown, coalesce, discount',
    ],
    [
      "wrong enum value (channel)",
      changeLine(19, "        channel: sms", "        channel: fax"),
      'rules.yaml:19:9 rules[0].steps[1].channel: expected a channel: email, sms or voice (got "fax")',
    ],
    [
      // Previewed in 77 units and "...": the emoji across the cut is left out whole.
      "wrong enum value, long, an emoji across the preview's cut",
      changeLine(
        19,
        "        channel: sms",
        `        channel: ${"a".repeat(75)}\u{1F600}${"b".repeat(10)}`,
      ),
      `rules.yaml:19:9 rules[0].steps[1].channel: expected a channel: email, sms or voice (got "${"a".repeat(75)}...)`,
    ],
    [
      "wrong enum value (kind)",
      changeLine(18, "      - kind: check-in", "      - kind: checkin"),
      'rules.yaml:18:9 rules[0].steps[1].kind: expected a kind: thank-you, check-in, discount or custom (got "checkin")',
    ],
    [
      "bad duration",
      changeLine(21, "        delay: P3M", "        delay: 3 months"),
      'rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "3 months"',
    ],
    [
      "fractional duration",
      changeLine(21, "        delay: P3M", "        delay: P1.5M"),
      'rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "P1.5M"',
    ],
    [
      "half-typed duration (P alone)",
      changeLine(21, "        delay: P3M", "        delay: P"),
      'rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "P"',
    ],
    [
      "duration with an empty time part",
      changeLine(21, "        delay: P3M", "        delay: P1DT"),
      'rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "P1DT"',
    ],
    [
      "duration of a typo's length",
      changeLine(21, "        delay: P3M", "        delay: P999999Y"),
      'rules.yaml:21:9 rules[0].steps[1].delay: expected a duration shorter than 10 years, got "P999999Y"',
    ],
    [
      "duration as a number",
      changeLine(21, "        delay: P3M", "        delay: 14"),
      "rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration such as PT2H, P14D or P3M (got 14)",
    ],
    [
      "bad time of day",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "08:00", end: "9pm" }',
      ),
      'rules.yaml:8:28 sendWindows.email.end: expected a local time "HH:MM" between "00:00" and "24:00", got "9pm"',
    ],
    [
      "window end before start",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "08:00", end: "07:00" }',
      ),
      "rules.yaml:8:28 sendWindows.email.end: expected end (07:00) to be later than start (08:00); windows cannot span midnight",
    ],
    [
      "window end before start, in a step's own window",
      changeLine(
        17,
        "        delay: PT1H",
        '        delay: PT1H\n        sendWindow: { start: "12:00", end: "12:00" }',
      ),
      "rules.yaml:18:39 rules[0].steps[0].sendWindow.end: expected end (12:00) to be later than start (12:00); windows cannot span midnight",
    ],
    [
      "bad weekday",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "08:00", end: "21:00", days: [monday] }',
      ),
      'rules.yaml:8:49 sendWindows.email.days[0]: expected a weekday: mon, tue, wed, thu, fri, sat or sun (got "monday")',
    ],
    [
      "duplicate rule id",
      changeLine(22, "  - id: over-fifty", "  - id: big-ticket"),
      'rules.yaml:22:5 rules[1].id: duplicate rule id "big-ticket": rules[0] already uses it',
    ],
    [
      "duplicate step id (two steps of one kind without ids)",
      changeLine(18, "      - kind: check-in", "      - kind: thank-you"),
      'rules.yaml:18:9 rules[0].steps[1].kind: rule big-ticket already has a step with the id "thank-you": give each step a distinct id',
    ],
    [
      "rule without steps and not final",
      BASE.split("\n").slice(0, 24).join("\n"),
      "rules.yaml:22:5 rules[1].steps: a rule without steps does nothing: add steps, or set final: true to stop the rules below it",
    ],
    [
      "amount with too many decimals for the currency",
      changeLine(24, "      total: { min: 50 }", "      total: { min: 49.999 }"),
      "rules.yaml:24:16 rules[1].when.total.min: GBP has 2 decimal places, got 49.999",
    ],
    [
      "amount with decimals in a currency without them",
      changeLine(24, "      total: { min: 50 }", '      total: { min: "5000.5", currency: JPY }'),
      "rules.yaml:24:16 rules[1].when.total.min: JPY has 0 decimal places, got 5000.5",
    ],
    [
      "amount that is not a number",
      changeLine(24, "      total: { min: 50 }", '      total: { min: "fifty" }'),
      'rules.yaml:24:16 rules[1].when.total.min: expected a non-negative decimal amount such as 19.99, got "fifty"',
    ],
    [
      "invalid time zone",
      changeLine(3, "  timezone: Europe/London", "  timezone: Europe/Londn"),
      'rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Londn"',
    ],
    [
      "a locale template files cannot be named after",
      changeLine(4, "  currency: GBP", "  currency: GBP\n  locale: english"),
      'rules.yaml:5:3 defaults.locale: expected a locale such as en, de or en-GB (a language code of 2 or 3 letters, as template files are named: en.text.liquid), got "english"',
    ],
    [
      "invalid currency (defaults)",
      changeLine(4, "  currency: GBP", "  currency: GBX"),
      'rules.yaml:4:3 defaults.currency: expected an ISO 4217 currency code such as EUR, got "GBX"',
    ],
    [
      "invalid currency (in a rule)",
      changeLine(24, "      total: { min: 50 }", "      total: { min: 50, currency: EURO }"),
      'rules.yaml:24:25 rules[1].when.total.currency: expected an ISO 4217 currency code such as EUR, got "EURO"',
    ],
    [
      "lower-case currency (defaults)",
      changeLine(4, "  currency: GBP", "  currency: gbp"),
      'rules.yaml:4:3 defaults.currency: expected three capital letters, ISO 4217, e.g. EUR: write GBP, got "gbp"',
    ],
    [
      "lower-case currency (in a rule)",
      changeLine(24, "      total: { min: 50 }", "      total: { min: 50, currency: eur }"),
      'rules.yaml:24:25 rules[1].when.total.currency: expected three capital letters, ISO 4217, e.g. EUR: write EUR, got "eur"',
    ],
    [
      "lower-case currency naming an amount of a threshold (at that key, not the whole threshold)",
      changeLine(24, "      total: { min: 50 }", '      total: { min: { GBP: "50", usd: "60" } }'),
      'rules.yaml:24:34 rules[1].when.total.min.usd: expected three capital letters, ISO 4217, e.g. EUR: write USD, got "usd"',
    ],
    [
      "a currency without an amount it names (it would be ignored)",
      changeLine(24, "      total: { min: 50 }", "      total: { currency: USD }"),
      "rules.yaml:24:16 rules[1].when.total.currency: currency names the currency of a single min or max, and there is none here (amounts given per currency name their own): remove currency, or give min or max",
    ],
    [
      "a currency beside amounts given per currency (it would be ignored)",
      changeLine(
        24,
        "      total: { min: 50 }",
        '      total: { min: { GBP: "50" }, currency: USD }',
      ),
      "rules.yaml:24:36 rules[1].when.total.currency: currency names the currency of a single min or max, and there is none here (amounts given per currency name their own): remove currency, or give min or max",
    ],
    [
      "a currency on anyItem without a price",
      changeLine(
        12,
        "      anyItem: { categories: [big-ticket] }",
        "      anyItem: { categories: [big-ticket], currency: EUR }",
      ),
      "rules.yaml:12:44 rules[0].when.anyItem.currency: currency names the currency of a single minPrice or maxPrice, and there is none here (amounts given per currency name their own): remove currency, or give minPrice or maxPrice",
    ],
    [
      "noItem excluding every category allItems needs (the condition matches nothing)",
      changeLine(
        12,
        "      anyItem: { categories: [big-ticket] }",
        "      allItems: { categories: [Laptops] }\n      noItem: { categories: [big-ticket] }",
      ),
      "rules.yaml:13:7 rules[0].when.noItem: noItem leaves out every category allItems needs (Laptops), so this condition matches nothing: remove one of them or change its categories",
    ],
    [
      "noItem excluding every category anyItem needs, in a nested condition",
      changeLine(
        12,
        "      anyItem: { categories: [big-ticket] }",
        "      any:\n        - total: { min: 1000 }\n        - { anyItem: { categories: [televisions] }, noItem: { categories: [big-ticket] } }",
      ),
      "rules.yaml:14:53 rules[0].when.any[1].noItem: noItem leaves out every category anyItem needs (televisions), so this condition matches nothing: remove one of them or change its categories",
    ],
    [
      "an owner's report day on daily reports (it would be ignored)",
      changeLine(
        9,
        "rules:",
        "owners:\n  - { name: Maria, email: maria@shop.example, timezone: Europe/London, frequency: daily, day: fri }\nrules:",
      ),
      "rules.yaml:10:90 owners[0].day: day is the weekday of weekly reports, and this owner's are daily: remove day, or make frequency weekly",
    ],
    [
      "two owners with one address (its one report schedule would serve one of them)",
      changeLine(
        9,
        "rules:",
        "owners:\n  - { name: Maria, email: maria@shop.example, timezone: Europe/London, frequency: daily }\n  - { name: Maria, email: Maria@Shop.example, timezone: Europe/London, frequency: weekly }\nrules:",
      ),
      "rules.yaml:11:20 owners[1].email: owners[0] has this address too, and an address has one report schedule: only one of them would get reports, on the other's schedule; give each owner their own address, or remove one",
    ],
    [
      "an owner's stores without alerts (they choose alerts only: reports cover every store)",
      changeLine(
        9,
        "rules:",
        "owners:\n  - { name: Maria, email: maria@shop.example, timezone: Europe/London, frequency: weekly, stores: [store-1], alertWindow: PT1H }\nrules:",
      ),
      "rules.yaml:10:91 owners[0].stores: stores chooses which alerts this owner gets, and alerts is not true: it would be ignored (reports cover every store); set alerts: true, or remove stores",
      "rules.yaml:10:110 owners[0].alertWindow: alertWindow bundles this owner's alerts, and alerts is not true: it would be ignored; set alerts: true, or remove alertWindow",
    ],
    [
      "a rule's discount settings without a discount step (they would be ignored)",
      changeLine(22, "  - id: over-fifty", "  - id: over-fifty\n    discount: { percent: 20 }"),
      "rules.yaml:23:5 rules[1].discount: discount sets the codes of discount steps, and rule over-fifty has none: remove discount or add a discount step",
    ],
    [
      "a date of the rates that is no date (reasons would quote it)",
      changeLine(9, "rules:", 'currencies: { rates: { USD: "0.79" }, asOf: 2026-13-01 }\nrules:'),
      'rules.yaml:9:39 currencies.asOf: expected the date of the rates, YYYY-MM-DD (got "2026-13-01")',
    ],
    [
      "a final rule that matches every purchase above other rules (they never apply)",
      changeLine(
        10,
        "  - id: big-ticket",
        "  - id: nothing\n    priority: 5\n    final: true\n  - id: big-ticket",
      ),
      "rules.yaml:12:5 rules[0].final: rule nothing is final and has no when, so it matches every purchase and the rules below it never apply (big-ticket, over-fifty): give it a when, a lower priority, or remove final",
    ],
    [
      "an SMS segment count on a channel that sends no texts",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "08:00", end: "21:00" }\nchannels: { email: { ratePerSecond: 20, maxSegments: 2 } }',
      ),
      "rules.yaml:9:41 channels.email.maxSegments: maxSegments limits the length of texts, and channels.email sends none: remove it, or set it under channels.sms",
    ],
    [
      "a channel rate so slow that sends would be months apart",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "08:00", end: "21:00" }\nchannels: { email: { ratePerSecond: 0.0000001 } }',
      ),
      "rules.yaml:9:22 channels.email.ratePerSecond: expected messages per second from 0.001 (one every 1000 seconds) to 10000, such as 5 or 0.5 (got 1e-7)",
    ],
    [
      "bad group name",
      changeLine(6, "  big-ticket: [televisions, laptops]", "  Big_Ticket: [televisions, laptops]"),
      'rules.yaml:6:3 groups.Big_Ticket: expected a group name: lower-case letters, digits and dashes, such as thank-you (got "Big_Ticket")',
    ],
    [
      "a group inside a group (not looked into: it would match nothing)",
      changeLine(
        6,
        "  big-ticket: [televisions, laptops]",
        "  big-ticket: [televisions, laptops]\n  premium: [big-ticket, cameras]",
      ),
      'rules.yaml:7:13 groups.premium[0]: "big-ticket" is a group: a group lists categories, so list "big-ticket"\'s categories here instead',
    ],
    [
      "missing required field",
      changeLine(16, "        template: thank-you", null),
      "rules.yaml:14:9 rules[0].steps[0].template: expected a template id: lower-case letters, digits and dashes (missing)",
    ],
    [
      "wrong type",
      changeLine(22, "  - id: over-fifty", "  - id: over-fifty\n    final: yes"),
      'rules.yaml:23:5 rules[1].final: expected true or false (got "yes")',
    ],
    [
      "bad rule id",
      changeLine(22, "  - id: over-fifty", "  - id: Over 50"),
      'rules.yaml:22:5 rules[1].id: expected a rule id: lower-case letters, digits and dashes, such as thank-you (got "Over 50")',
    ],
    [
      "bad holiday date",
      changeLine(9, "rules:", "holidays: [2026-12-25, 2026-13-01]\nrules:"),
      'rules.yaml:9:24 holidays[1]: expected a date YYYY-MM-DD (got "2026-13-01")',
    ],
    [
      "a key in the wrong place (suggests only keys allowed there)",
      changeLine(1, "version: 1", "version: 1\ndelay: PT1H"),
      'rules.yaml:2:1 delay: unknown key "delay"; allowed here: version, defaults, cooldowns, currencies, attribution, groups, sendWindows, channels, frequencyCaps, prices, budget, whenCapped, shop, optOutConfirmation, owners, holidays, gracePeriods, rules',
    ],
    [
      "a misspelt group name",
      changeLine(
        12,
        "      anyItem: { categories: [big-ticket] }",
        "      anyItem: { categories: [big-tickt] }",
      ),
      'rules.yaml:12:31 rules[0].when.anyItem.categories[0]: "big-tickt" is not a group; did you mean the group "big-ticket"?',
    ],
    [
      "a malformed time gets one problem, not a second about its order",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: { start: "8am", end: "21:00" }',
      ),
      'rules.yaml:8:12 sendWindows.email.start: expected a local time "HH:MM" between "00:00" and "24:00", got "8am"',
    ],
    [
      "wrong version",
      changeLine(1, "version: 1", "version: 2"),
      "rules.yaml:1:1 version: expected version: 1 (got 2)",
    ],
    [
      "a shop address with no line in it",
      changeLine(9, "rules:", 'shop: { name: Corner Shop, address: " , , " }\nrules:'),
      'rules.yaml:9:28 shop.address: expected the postal address, lines separated by commas, such as "1 High Street, London N1 1AA" (got " , , ")',
    ],
    [
      "a shop address that is not text",
      changeLine(9, "rules:", "shop: { name: Corner Shop, address: 42 }\nrules:"),
      'rules.yaml:9:28 shop.address: expected the postal address, such as "1 High Street, London N1 1AA" (got 42)',
    ],
  ])("%s", (_, text, ...expected) => {
    expect(rulesProblems(text)).toEqual(expected);
  });

  it("a zero duration where zero means nothing is refused, a zero delay is not", () => {
    expect(
      rulesProblems(yaml`
        version: 1
        defaults: { timezone: Europe/London, currency: GBP, discount: { validFor: P0D } }
        gracePeriods: { check-in: PT0S }
        frequencyCaps: { sms: [{ max: 1, per: PT0S }] }
        cooldowns: { discount: PT0M }
        rules:
          - id: a
            coalesce: PT0S
            cooldown: P0D
            discount: { validFor: PT0H }
            steps:
              - { kind: thank-you, channel: email, template: t, delay: PT0S }
              - { kind: discount, channel: email, template: d, delay: PT0S }
      `),
    ).toEqual([
      'rules.yaml:2:65 defaults.discount.validFor: expected a duration longer than zero, such as PT1H, got "P0D"',
      'rules.yaml:3:17 gracePeriods.check-in: expected a duration longer than zero, such as PT1H, got "PT0S"',
      'rules.yaml:4:34 frequencyCaps.sms[0].per: expected a duration longer than zero, such as PT1H, got "PT0S"',
      'rules.yaml:5:14 cooldowns.discount: expected a duration longer than zero, such as PT1H, got "PT0M"',
      'rules.yaml:8:5 rules[0].coalesce: expected a duration longer than zero, such as PT1H, got "PT0S"',
      'rules.yaml:9:5 rules[0].cooldown: expected a duration longer than zero, such as PT1H, got "P0D"',
      'rules.yaml:10:17 rules[0].discount.validFor: expected a duration longer than zero, such as PT1H, got "PT0H"',
    ]);
  });

  it("YAML's .inf, -.inf and .nan are refused once each in any numeric field, said as written", () => {
    expect(
      rulesProblems(yaml`
        version: 1
        defaults: { timezone: Europe/London, currency: GBP, discount: { percent: .nan } }
        currencies: { rates: { USD: .inf } }
        channels: { sms: { ratePerSecond: .nan, maxSegments: .inf }, voice: [.inf, -.inf, .nan] }
        frequencyCaps: { sms: [{ max: .inf, per: P1D }] }
        prices: { sms: { GB: .inf }, callMinutes: .nan }
        budget: { sms: { monthly: .inf } }
        rules:
          - id: a
            priority: -.inf
            when:
              total: { min: .inf, max: { USD: .nan } }
              anyItem: { maxPrice: -.inf }
              customer: { minPreviousPurchases: .inf, maxPreviousPurchases: 2 }
            steps: [{ kind: thank-you, channel: email, template: t, delay: .inf }]
      `),
    ).toEqual([
      "rules.yaml:2:65 defaults.discount.percent: expected a whole percent from 1 to 100 (got .nan, YAML's not-a-number, which no field takes)",
      'rules.yaml:3:24 currencies.rates.USD: expected a quoted decimal rate such as "0.79" (YAML numbers are not exact) (got .inf, YAML\'s infinity, which no field takes)',
      "rules.yaml:4:20 channels.sms.ratePerSecond: expected messages per second, such as 5 or 0.5 (got .nan, YAML's not-a-number, which no field takes)",
      "rules.yaml:4:41 channels.sms.maxSegments: expected a number, got .inf, YAML's infinity, which no field takes",
      "rules.yaml:4:62 channels.voice: expected a mapping of keys to values, got [.inf,-.inf,.nan]",
      "rules.yaml:5:26 frequencyCaps.sms[0].max: expected a number, got .inf, YAML's infinity, which no field takes",
      'rules.yaml:6:18 prices.sms.GB: expected a quoted decimal amount such as "0.04" (YAML numbers are not exact) (got .inf, YAML\'s infinity, which no field takes)',
      "rules.yaml:6:30 prices.callMinutes: expected a number, got .nan, YAML's not-a-number, which no field takes",
      'rules.yaml:7:18 budget.sms.monthly: expected a quoted decimal amount such as "0.04" (YAML numbers are not exact) (got .inf, YAML\'s infinity, which no field takes)',
      "rules.yaml:10:5 rules[0].priority: expected a number, got -.inf, YAML's minus infinity, which no field takes",
      'rules.yaml:12:16 rules[0].when.total.min: expected an amount such as 500, or one per currency such as { GBP: "50", USD: "60" } (got .inf, YAML\'s infinity, which no field takes)',
      "rules.yaml:12:34 rules[0].when.total.max.USD: expected a non-negative amount such as 500 or 49.99 (got .nan, YAML's not-a-number, which no field takes)",
      'rules.yaml:13:18 rules[0].when.anyItem.maxPrice: expected an amount such as 500, or one per currency such as { GBP: "50", USD: "60" } (got -.inf, YAML\'s minus infinity, which no field takes)',
      "rules.yaml:14:19 rules[0].when.customer.minPreviousPurchases: expected a number, got .inf, YAML's infinity, which no field takes",
      "rules.yaml:15:61 rules[0].steps[0].delay: expected an ISO-8601 duration such as PT2H, P14D or P3M (got .inf, YAML's infinity, which no field takes)",
    ]);
  });

  it("a lower bound above its upper bound is refused: the condition would match nothing", () => {
    expect(
      rulesProblems(yaml`
        version: 1
        defaults: { timezone: Europe/London, currency: GBP }
        rules:
          - id: a
            when:
              customer: { minPreviousPurchases: 5, maxPreviousPurchases: 2 }
              total: { min: "500", max: "50" }
              any:
                - anyItem: { minPrice: { USD: 80, GBP: 10 }, maxPrice: { USD: "60.00", GBP: 20 } }
            steps: [{ kind: thank-you, channel: email, template: t, delay: PT1H }]
      `),
    ).toEqual([
      "rules.yaml:6:19 rules[0].when.customer.minPreviousPurchases: customer.minPreviousPurchases (5) is above customer.maxPreviousPurchases (2), so this condition matches nothing: swap them or fix one",
      "rules.yaml:7:16 rules[0].when.total.min: total.min (500 GBP) is above total.max (50 GBP), so this condition matches nothing: swap them or fix one",
      "rules.yaml:9:34 rules[0].when.any[0].anyItem.minPrice.USD: anyItem.minPrice (80 USD) is above anyItem.maxPrice (60.00 USD), so this condition matches nothing: swap them or fix one",
    ]);
    // Equal bounds, and bounds in different currencies, are fine.
    expect(() =>
      rulesFrom(yaml`
        version: 1
        defaults: { timezone: Europe/London, currency: GBP }
        rules:
          - id: a
            when:
              customer: { minPreviousPurchases: 2, maxPreviousPurchases: 2 }
              total: { min: { USD: 500 }, max: "50" }
            steps: [{ kind: thank-you, channel: email, template: t, delay: PT1H }]
      `),
    ).not.toThrow();
  });

  it("a step's send window may narrow its channel's, not widen it", () => {
    expect(
      rulesProblems(yaml`
        version: 1
        defaults: { timezone: Europe/London, currency: GBP }
        sendWindows:
          sms: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat] }
        rules:
          - id: a
            steps:
              - kind: check-in
                channel: sms
                template: t
                delay: P1D
                sendWindow: { start: "05:00", end: "23:30", days: [sat, sun], closedOnHolidays: false }
      `),
    ).toEqual([
      "rules.yaml:12:23 rules[0].steps[0].sendWindow.start: a step's window may only narrow its channel's sendWindows.sms (09:00–20:00, mon, tue, wed, thu, fri, sat): expected start at 09:00 or later, got 05:00",
      "rules.yaml:12:39 rules[0].steps[0].sendWindow.end: a step's window may only narrow its channel's sendWindows.sms (09:00–20:00, mon, tue, wed, thu, fri, sat): expected end at 20:00 or earlier, got 23:30",
      "rules.yaml:12:53 rules[0].steps[0].sendWindow.days: a step's window may only narrow its channel's sendWindows.sms (09:00–20:00, mon, tue, wed, thu, fri, sat): expected days among mon, tue, wed, thu, fri, sat, got sun too",
      "rules.yaml:12:71 rules[0].steps[0].sendWindow.closedOnHolidays: a step's window may only narrow its channel's sendWindows.sms (09:00–20:00, mon, tue, wed, thu, fri, sat): sendWindows.sms is closed on holidays, so the step cannot open them; remove closedOnHolidays: false",
    ]);
  });

  it("a step's send window may match its channel's exactly, and a final rule with a when shadows nothing", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      sendWindows:
        sms: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat] }
      rules:
        - id: a
          priority: 5
          final: true
          when: { total: { min: 500 }, stores: [store-1] }
          steps:
            - kind: check-in
              channel: sms
              template: t
              delay: P1D
              sendWindow: { start: "09:00", end: "20:00", days: [mon, sat] }
        - id: b
          steps: [{ kind: thank-you, channel: email, template: t, delay: PT1H }]
    `);
    expect(rules.rules.map((r) => r.id)).toEqual(["a", "b"]);
    expect(rules.rules[0]?.steps[0]?.sendWindow).toMatchObject({
      startMinute: 540,
      endMinute: 1200,
    });
  });

  it("a call's fallback keeps its call's purpose: an offer's fallback needs consent to offers too", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      channels:
        voice: { ratePerSecond: 1, voices: { en: Polly.Amy }, answeringMachine: hangup }
      rules:
        - id: a
          steps:
            - kind: discount
              channel: voice
              template: offer-call
              delay: P7D
              fallback: { channel: sms, template: offer, after: P1D }
            - kind: check-in
              channel: voice
              template: check-in-call
              delay: P3M
              fallback: { channel: email, template: check-in, after: P1D }
    `);
    expect(rules.rules[0]?.steps.map((s) => [s.id, s.purpose, s.fallbackOf])).toEqual([
      ["discount", "marketing", undefined],
      ["discount-fallback", "marketing", "discount"],
      ["check-in", "transactional", undefined],
      ["check-in-fallback", "transactional", "check-in"],
    ]);
  });

  it("an empty file says so", () => {
    expect(rulesProblems("")).toEqual([
      "rules.yaml:1:1 expected a mapping with version, defaults and rules, got an empty file",
    ]);
  });

  it("a rule without steps is fine when it is final (it stops the rules below it)", () => {
    const text = `${BASE.split("\n").slice(0, 24).join("\n")}\n    final: true\n`;
    expect(rulesFrom(text).rules.map((r) => [r.id, r.final, r.steps.length])).toEqual([
      ["big-ticket", false, 2],
      ["over-fifty", true, 0],
    ]);
  });

  it("steps with distinct ids may share a kind", () => {
    const text = changeLine(
      18,
      "      - kind: check-in",
      "      - id: second-thanks\n        kind: thank-you",
    );
    expect(rulesFrom(text).rules[0]?.steps.map((s) => s.id)).toEqual([
      "thank-you",
      "second-thanks",
    ]);
  });

  it("KWD amounts with three decimals are fine", () => {
    const text = changeLine(
      24,
      "      total: { min: 50 }",
      '      total: { min: "1.234", currency: KWD }',
    );
    expect(rulesFrom(text).rules[1]?.when).toMatchObject({
      type: "total",
      min: { values: [{ minor: 1234, currency: "KWD" }] },
    });
  });
});

describe("a %YAML 1.1 directive", () => {
  it("does not change how values read: unquoted dates, times and NO stay text, as YAML 1.2 reads them", () => {
    const text = `%YAML 1.1\n---\n${BASE}holidays: [2026-12-25]\nsendWindows: { email: { start: 08:00, end: 21:00 } }\nprices: { sms: { NO: "0.05" } }\n`;
    const rules = rulesFrom(text.replace(/\nsendWindows:\n.*\n/, "\n"));
    expect([...rules.holidays]).toEqual(["2026-12-25"]);
    expect(rules.sendWindows.email).toMatchObject({ startMinute: 480, endMinute: 1260 });
    expect([...(rules.spend.prices.sms?.byCountry.keys() ?? [])]).toEqual(["NO"]);
  });

  it("leaves yes and no text, so final: yes is refused as everywhere", () => {
    expect(
      rulesProblems(
        `%YAML 1.1\n---\n${changeLine(22, "  - id: over-fifty", "  - id: over-fifty\n    final: yes")}`,
      ),
    ).toEqual(['rules.yaml:25:5 rules[1].final: expected true or false (got "yes")']);
  });
});

describe("category and store names", () => {
  const text = yaml`
    version: 1
    defaults: { timezone: Europe/London, currency: GBP }
    groups: { tech: [" Laptops", "phones "] }
    owners:
      - { name: Maria, email: maria@shop.example, timezone: Europe/London, frequency: daily, alerts: true, stores: [" store-1 "] }
    rules:
      - id: tech
        when:
          all:
            - anyItem: { categories: ["Televisions ", tech] }
            - stores: ["store-1 "]
        steps: [{ kind: thank-you, channel: email, template: thank-you, delay: PT1H }]
  `;

  it("are read trimmed, as events' are: a quoted name with spaces around it still matches", () => {
    const rules = rulesFrom(text);
    const when = rules.rules[0]?.when;
    if (!when) throw new Error("no condition");
    for (const category of ["televisions", "laptops", "phones"]) {
      const event = purchase({
        items: [item(category, "75.00")],
        store: { id: "store-1" },
      });
      expect(matchCondition(when, event, NO_HISTORY), category).toEqual({ matched: true });
    }
    expect(rules.owners[0]?.stores).toEqual(["store-1"]);
  });

  it("are refused when they are white space only", () => {
    expect(
      rulesProblems(
        text.replace('stores: ["store-1 "]', 'stores: ["  "]').replace('"phones "', '" "'),
      ),
    ).toEqual([
      "rules.yaml:3:30 groups.tech[1]: expected a category name, got an empty or blank one",
      "rules.yaml:11:20 rules[0].when.all[1].stores[0]: expected a store id, got an empty or blank one",
    ]);
  });
});

describe("YAML anchors and aliases", () => {
  /** Nine anchors, each a list of nine aliases of the one before: 9^9 values when expanded. */
  const laughs = (indent: string) =>
    [
      `${indent}a: &a ["x","x","x","x","x","x","x","x","x"]`,
      ..."bcdefghi".split("").map((name, i) => {
        const previous = "abcdefgh"[i];
        return `${indent}${name}: &${name} [${Array(9).fill(`*${previous}`).join(",")}]`;
      }),
    ].join("\n");
  /** BASE with an ordinary alias: SMS gets the email window (line 9). */
  const withSharedWindow = changeLine(
    8,
    '  email: { start: "08:00", end: "21:00" }',
    '  email: &day { start: "08:00", end: "21:00" }\n  sms: *day',
  );
  /** `count` aliases of one scalar anchor, in a file that is not a rules file. */
  const flatAliases = (count: number) => `a: &s x\nl: [${Array(count).fill("*s").join(",")}]\n`;

  it("an ordinary alias is expanded", () => {
    const rules = rulesFrom(withSharedWindow);
    expect(rules.sendWindows.sms).toEqual(rules.sendWindows.email);
  });

  it.each([
    [
      "a billion laughs, alone",
      `${laughs("")}\n`,
      // *a nine times, *b (itself nine *a) nine times: 99 expansions; the first *c passes 100.
      "rules.yaml:4:8 YAML: too many alias expansions: with this *c, aliases in this file expand more than 100 times; write the values out or nest fewer aliases",
    ],
    [
      "a billion laughs after an ordinary alias (located in the bomb, not at *day)",
      `${withSharedWindow}laughs:\n${laughs("  ")}\n`,
      "rules.yaml:35:10 YAML: too many alias expansions: with this *c, aliases in this file expand more than 100 times; write the values out or nest fewer aliases",
    ],
    [
      "101 aliases of one value",
      flatAliases(101),
      "rules.yaml:2:305 YAML: too many alias expansions: with this *s, aliases in this file expand more than 100 times; write the values out or nest fewer aliases",
    ],
    [
      "an alias without an anchor",
      changeLine(4, "  currency: GBP", "  currency: *gbp"),
      "rules.yaml:4:13 YAML: unknown alias *gbp: no anchor &gbp before it",
    ],
    [
      "an alias before its anchor",
      changeLine(4, "  currency: GBP", "  currency: *gbp\nshop: &gbp GBP"),
      "rules.yaml:4:13 YAML: unknown alias *gbp: no anchor &gbp before it",
    ],
  ])("%s is one located problem, found quickly", (_, text, expected) => {
    const started = performance.now();
    expect(rulesProblems(text)).toEqual([expected]);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("a merge key (<<: *anchor) copies the anchored mapping's keys, and the mapping's own win", () => {
    const rules = rulesFrom(
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: &day { start: "08:00", end: "21:00" }\n  sms: { <<: *day, days: [mon, tue] }',
      ).replace("      - kind: check-in\n", "      - &check-in\n        kind: check-in\n") +
        "  - id: later-check-in\n    steps:\n      - <<: *check-in\n        delay: P4M\n",
    );
    expect(rules.sendWindows.sms).toEqual({
      startMinute: 480,
      endMinute: 1260,
      days: new Set([1, 2]),
      closedOnHolidays: true,
    });
    expect(
      rules.rules[2]?.steps.map((s) => [s.id, s.channel, s.template, s.delay.toISO()]),
    ).toEqual([["check-in", "sms", "check-in", "P4M"]]);
  });

  it("a problem in a merged value is reported where it is used too, at the merge key", () => {
    const text = changeLine(
      17,
      "        delay: PT1H",
      "        delay: soon\n      - <<: *thanks\n        id: again",
    ).replace("      - kind: thank-you\n", "      - &thanks\n        kind: thank-you\n");
    expect(rulesProblems(text)).toEqual([
      'rules.yaml:18:9 rules[0].steps[0].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "soon"',
      'rules.yaml:19:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "soon"',
    ]);
  });

  it.each([
    [
      "a value that is no mapping",
      changeLine(22, "  - id: over-fifty", "  - id: over-fifty\n    <<: hello"),
      'rules.yaml:23:9 rules[1].<<: YAML: a merge key takes a mapping, an alias of one or a list of them, such as <<: *window; got "hello"',
    ],
    [
      "an alias of a value that is no mapping",
      changeLine(4, "  currency: GBP", "  currency: &gbp GBP").replace(
        "  - id: over-fifty",
        "  - id: over-fifty\n    <<: *gbp",
      ),
      'rules.yaml:23:9 rules[1].<<: YAML: a merge key takes a mapping, an alias of one or a list of them, such as <<: *window; got *gbp, which is "GBP"',
    ],
    [
      "a list with something other than mappings in it",
      changeLine(
        8,
        '  email: { start: "08:00", end: "21:00" }',
        '  email: &day { start: "08:00", end: "21:00" }\n  sms: { <<: [*day, [mon]] }',
      ),
      "rules.yaml:9:21 sendWindows.sms.<<: YAML: a merge key takes a mapping, an alias of one or a list of them, such as <<: *window; got a list",
    ],
  ])("a merge key with %s is one located problem", (_, text, expected) => {
    expect(rulesProblems(text)).toEqual([expected]);
  });

  it("100 aliases of one value are within the limit", () => {
    expect(rulesProblems(flatAliases(100)).filter((p) => p.includes("alias"))).toEqual([]);
  });
});

describe("several problems at once", () => {
  it("reports every problem in one run, in file order", () => {
    let text = changeLine(3, "  timezone: Europe/London", "  timezone: Mars/Olympus");
    text = text
      .replace("        channel: sms", "        channel: pigeon")
      .replace("        delay: P3M", "        delay: soon")
      .replace("  - id: over-fifty", "  - id: big-ticket")
      .replace("      total: { min: 50 }", "      total: { min: 0.001 }");
    expect(rulesProblems(text, "config/rules.yaml")).toEqual([
      'config/rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Mars/Olympus"',
      'config/rules.yaml:19:9 rules[0].steps[1].channel: expected a channel: email, sms or voice (got "pigeon")',
      'config/rules.yaml:21:9 rules[0].steps[1].delay: expected an ISO-8601 duration with whole, non-negative numbers, such as PT2H, P14D or P3M, got "soon"',
      'config/rules.yaml:22:5 rules[1].id: duplicate rule id "big-ticket": rules[0] already uses it',
      "config/rules.yaml:24:16 rules[1].when.total.min: GBP has 2 decimal places, got 0.001",
    ]);
  });

  it("each problem carries file, line, column, path and message as fields", () => {
    const result = parseRules(
      changeLine(19, "        channel: sms", "        channel: fax"),
      "x.yaml",
    );
    expect(result).toEqual({
      ok: false,
      problems: [
        {
          file: "x.yaml",
          line: 19,
          column: 9,
          path: "rules[0].steps[1].channel",
          message: 'expected a channel: email, sms or voice (got "fax")',
        },
      ],
    });
  });
});

describe("loadRules", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "followups-rules-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads <dir>/rules.yaml and names it in problems", async () => {
    await writeFile(
      path.join(dir, "rules.yaml"),
      changeLine(4, "  currency: GBP", "  currency: ZZZ"),
    );
    const result = await loadRules(dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map(formatProblem)).toEqual([
      `${path.join(dir, "rules.yaml")}:4:3 defaults.currency: expected an ISO 4217 currency code such as EUR, got "ZZZ"`,
    ]);
  });

  it("a file that is not UTF-8 (an editor's Latin-1) is refused at its first bad byte, not read with U+FFFD", async () => {
    await writeFile(
      path.join(dir, "rules.yaml"),
      Buffer.from(
        BASE.replace("  currency: GBP", "  currency: GBP\nshop: { name: Caf\u00e9 }"),
        "latin1",
      ),
    );
    const result = await loadRules(dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map(formatProblem)).toEqual([
      `${path.join(dir, "rules.yaml")}:5:18 not UTF-8 (byte 0xE9): save the file as UTF-8 (read as it is, that character would be \u{FFFD})`,
    ]);
  });

  it("a missing file is one problem without a position", async () => {
    const folder = path.join(dir, "without-rules");
    await mkdir(folder, { recursive: true });
    const result = await loadRules(folder);
    expect(result).toEqual({
      ok: false,
      problems: [
        {
          file: path.join(folder, "rules.yaml"),
          line: 0,
          column: 0,
          path: "",
          message: "file not found",
        },
      ],
    });
    if (!result.ok && result.problems[0]) {
      expect(formatProblem(result.problems[0])).toBe(
        `${path.join(folder, "rules.yaml")} file not found`,
      );
    }
  });

  it("a missing config folder says which folder was looked for and how to name another", async () => {
    // `followups check` or `worker` run from another directory than the one holding config/.
    const missing = path.relative(process.cwd(), path.join(dir, "nowhere"));
    const result = await loadRules(missing);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    // Exactly this one problem: guarded by problems[0], an empty list would have passed unseen.
    expect(result.problems.map(formatProblem)).toEqual([
      `${path.join(missing, "rules.yaml")} file not found: there is no folder ${path.resolve(missing)}; name the folder holding rules.yaml and templates/ with --config DIR or CONFIG_DIR`,
    ]);
  });

  it("a directory in place of rules.yaml says so, not EISDIR", async () => {
    const config = path.join(dir, "directory-in-place");
    await mkdir(path.join(config, "rules.yaml"), { recursive: true });
    const result = await loadRules(config);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${path.join(config, "rules.yaml")} is a directory, expected a file`,
    ]);
  });

  it("rules.yaml itself given as the folder says the folder is wanted, not ENOTDIR", async () => {
    // `--config config/rules.yaml`, as an operator types it.
    const file = path.join(SHIPPED_CONFIG_DIR, "rules.yaml");
    const result = await loadRules(file);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${file} is a file: --config and CONFIG_DIR name the folder holding rules.yaml and templates/`,
    ]);
  });

  it("an alias bomb in <dir>/rules.yaml is one problem at the alias, not a crash", async () => {
    const bombDir = path.join(dir, "bomb");
    await mkdir(bombDir);
    const anchors = "abcdefghi".split("");
    const lines = anchors.map((name, i) =>
      i === 0
        ? `${name}: &${name} [x, x, x, x, x, x, x, x, x]`
        : `${name}: &${name} [${Array(9)
            .fill(`*${anchors[i - 1]}`)
            .join(", ")}]`,
    );
    await writeFile(path.join(bombDir, "rules.yaml"), `${lines.join("\n")}\n`);
    const result = await loadRules(bombDir);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${path.join(bombDir, "rules.yaml")}:4:8 YAML: too many alias expansions: with this *c, aliases in this file expand more than 100 times; write the values out or nest fewer aliases`,
    ]);
  });

  it("the version is a content hash: same text, same version; any edit, a new one", () => {
    const a = rulesFrom(BASE);
    const b = parseRules(BASE, "elsewhere.yaml");
    const c = rulesFrom(`${BASE}# a comment\n`);
    expect(b.ok && b.rules.version).toBe(a.version);
    expect(c.version).not.toBe(a.version);
  });
});

describe("currencies", () => {
  const BASE = yaml`
    version: 1
    defaults: { timezone: Europe/London, currency: GBP }
    currencies: { rates: { USD: "0.79" }, asOf: 2026-12-01 }
    rules:
      - id: big
        when: { total: { min: { GBP: "500", JPY: "90000" } } }
        steps: [{ kind: thank-you, channel: email, template: thank-you, delay: PT1H }]
  `;

  it("refuse a rate for the default currency other than 1: it converts into itself, whatever the file says", () => {
    expect(rulesProblems(BASE.replace('USD: "0.79"', 'USD: "0.79", GBP: "1.25"'))).toEqual([
      "rules.yaml:3:37 currencies.rates.GBP: GBP is defaults.currency, which the rates convert into: its rate is 1, not 1.25; remove it",
    ]);
    expect(
      rulesFrom(BASE.replace('USD: "0.79"', 'USD: "0.79", GBP: "1.00"')).rates.toBase.get("GBP"),
    ).toBe("1.00");
  });

  it("compile thresholds per currency and the rates with their date", () => {
    const rules = rulesFrom(BASE);
    expect(rules.rules[0]?.when).toEqual({
      type: "total",
      min: {
        values: [
          { minor: 50_000, currency: "GBP" },
          { minor: 90_000, currency: "JPY" },
        ],
        rates: { base: "GBP", toBase: new Map([["USD", "0.79"]]), asOf: "2026-12-01" },
      },
    });
  });

  it("refuse a rate given as a YAML number, a currency code that is none, and too many decimals", () => {
    expect(rulesProblems(BASE.replace('USD: "0.79"', "USD: 0.79"))).toEqual([
      expect.stringContaining(
        'currencies.rates.USD: expected a quoted decimal rate such as "0.79" (YAML numbers are not exact)',
      ),
    ]);
    expect(rulesProblems(BASE.replace('JPY: "90000"', 'JPY: "900.5"'))).toEqual([
      expect.stringContaining("rules[0].when.total.min.JPY: JPY has 0 decimal places, got 900.5"),
    ]);
    expect(rulesProblems(BASE.replace('USD: "0.79"', 'XYZ: "0.79"'))).toEqual([
      expect.stringContaining("expected an ISO 4217 currency code"),
    ]);
    expect(rulesProblems(BASE.replace('USD: "0.79"', 'USD: "-0.79"'))).toEqual([
      'rules.yaml:3:24 currencies.rates.USD: expected a decimal rate above 0 with at most 9 digits before and after the point, such as "0.79" (got "-0.79")',
    ]);
    expect(rulesProblems(BASE.replace('USD: "0.79"', 'usd: "0.79"'))).toEqual([
      'rules.yaml:3:24 currencies.rates.usd: expected three capital letters, ISO 4217, e.g. EUR: write USD, got "usd"',
    ]);
  });
});
