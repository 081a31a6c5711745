import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PhoneMessage } from "../../src/channels/channel.js";
import { loadRules, parseRules } from "../../src/config/load-rules.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { countSmsSegments, smsEncoding } from "../../src/domain/sms-segments.js";
import { findStep } from "../../src/domain/step-ref.js";
import { type ComposeInput, createMessageComposer } from "../../src/templates/compose-message.js";
import { loadTemplates } from "../../src/templates/load-templates.js";
import { shortenNames } from "../../src/templates/sms-fit.js";
import { SAMPLE_TEMPLATE_CONTEXT } from "../../src/templates/template-context.js";
import { TemplateError, type TemplateSet } from "../../src/templates/template-set.js";
import { item, type PurchaseSpec, purchase } from "../support/fixtures.js";

/**
 * Issue 11, item 9: an SMS never goes out over channels.sms.maxSegments, whatever the purchase
 * carries. The shipped check-in SMS is composed as the delivery processor composes it.
 */

const temporaryDirs: string[] = [];
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

let shippedRules: RuleSet;
let shippedTemplates: TemplateSet;
beforeAll(async () => {
  const rules = await loadRules("config");
  if (!rules.ok) throw new Error(JSON.stringify(rules.problems));
  shippedRules = rules.rules;
  const templates = await loadTemplates("config", rules.rules);
  if (!templates.ok) throw new Error(JSON.stringify(templates.problems));
  shippedTemplates = templates.templates;
});

/** The shipped rules with the SMS cap set to `maxSegments`. */
function withCap(rules: RuleSet, maxSegments: number): RuleSet {
  return {
    ...rules,
    channels: { ...rules.channels, sms: { ...rules.channels.sms, maxSegments } },
  };
}

/** The check-in SMS of a TV bought with `spec`, composed with the shipped templates. */
async function checkIn(
  spec: PurchaseSpec,
  options: { rules?: RuleSet; templates?: TemplateSet; firstSmsToNumber?: boolean } = {},
): Promise<string> {
  const rules = options.rules ?? shippedRules;
  const found = findStep(rules, "big-ticket.check-in");
  if (!found) throw new Error("no check-in in the rules");
  const templates = options.templates ?? shippedTemplates;
  const compose = createMessageComposer(() => templates, { discountSecret: "test-secret" });
  const input: ComposeInput = {
    event: purchase({ items: [item("televisions", "1299.00")], ...spec }),
    rule: found.rule,
    step: found.step,
    stepId: "big-ticket.check-in",
    followUpId: "fu-1",
    dueAt: Date.parse("2027-02-23T10:00:00Z"),
    zone: "Europe/London",
    rules,
    firstSmsToNumber: options.firstSmsToNumber ?? false,
  };
  const message = (await compose(input)) as PhoneMessage;
  expect(message.channel).toBe("sms");
  return message.text;
}

const tv = (name: string) => [item("televisions", "1299.00", { name })];
/** 300 characters, as long as the contract allows, with a double prime and an en dash. */
const LONG_UCS2_NAME = `Aurora 55″ OLED TV – ${"with stand and remote ".repeat(14)}`.slice(0, 300);
const LONG_GSM_NAME = `Aurora 55-inch OLED TV - ${"with stand and remote ".repeat(14)}`.slice(
  0,
  300,
);

describe("an SMS over the cap is shortened at send time", () => {
  it("a 300-character name with non-GSM-7 characters: cut with … to fit 3 segments", async () => {
    expect(LONG_UCS2_NAME).toHaveLength(300);
    const text = await checkIn({ items: tv(LONG_UCS2_NAME) });
    expect(countSmsSegments(text)).toBeLessThanOrEqual(3);
    expect(smsEncoding(text)).toEqual({ encoding: "UCS-2", because: "″" });
    const cut = /Aurora 55″ OLED TV – with stand[^…]*…/.exec(text)?.[0] ?? "";
    expect(cut.length).toBeGreaterThan(60);
    expect(LONG_UCS2_NAME.startsWith(cut.slice(0, -1))).toBe(true);
    expect(text).not.toContain(LONG_UCS2_NAME);
  });

  it("one non-GSM-7 letter in the customer's name: the long item name is cut, the name kept", async () => {
    const text = await checkIn({
      customer: { name: "Ána Novak" },
      items: tv(LONG_GSM_NAME),
    });
    expect(countSmsSegments(text)).toBeLessThanOrEqual(3);
    expect(text).toContain("Ána");
    expect(text).toMatch(/Aurora 55-inch OLED TV - with stand[^…]*…/);
  });

  it("a GSM-7 body is cut with ... so the mark does not make it UCS-2", async () => {
    const text = await checkIn({ items: tv(LONG_GSM_NAME) }, { rules: withCap(shippedRules, 1) });
    expect(countSmsSegments(text)).toBe(1);
    expect(smsEncoding(text)).toEqual({ encoding: "GSM-7" });
    expect(text).toMatch(/Aurora 55-inch OLED TV - with[^.]*\.\.\./);
  });

  it.each([
    ["a letter and its accent (e and U+0301)", "Cafe\u0301 table", 4, "Caf…"],
    ["a flag (two regional indicators)", "DE🇩🇪 stand", 4, "DE…"],
    ["an emoji with a skin tone", "Hi👍🏽 pack", 4, "Hi…"],
    ["an emoji (a surrogate pair)", "Hi🎉 pack", 3, "Hi…"],
  ])("a name is cut between whole characters: %s", (_what, name, maxLength, cut) => {
    const context = {
      ...SAMPLE_TEMPLATE_CONTEXT,
      order: {
        ...SAMPLE_TEMPLATE_CONTEXT.order,
        items: [{ ...SAMPLE_TEMPLATE_CONTEXT.order.items[0], name }],
      },
    } as typeof SAMPLE_TEMPLATE_CONTEXT;
    expect(shortenNames(context, maxLength, "…").order.items[0]?.name).toBe(cut);
  });

  it("a body within the cap is sent as rendered, the name whole", async () => {
    const text = await checkIn({ items: tv(LONG_GSM_NAME) });
    expect(text).toContain(LONG_GSM_NAME);
    expect(countSmsSegments(text)).toBe(3);
  });

  it("a template whose fixed text alone is over the cap fails with a TemplateError", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "followups-sms-"));
    temporaryDirs.push(dir);
    const file = path.join(dir, "templates", "check-in", "en.text.liquid");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      `Hi {{ customer.firstName | default: "there" }}! ${"We hope all is well with your purchase. ".repeat(5)}`,
    );
    const roomy = parseRules(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en }",
        "optOutConfirmation: false",
        "channels: { sms: { ratePerSecond: 5, maxSegments: 10 } }",
        "rules:",
        "  - id: big-ticket",
        "    steps:",
        "      - { kind: check-in, channel: sms, template: check-in, delay: P3M }",
      ].join("\n"),
      "rules.yaml",
    );
    if (!roomy.ok) throw new Error(JSON.stringify(roomy.problems));
    const loaded = await loadTemplates(dir, roomy.rules);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const rules = withCap(roomy.rules, 1);
    const failure = checkIn({}, { rules, templates: loaded.templates }).catch((error) => error);
    const error = await failure;
    expect(error).toBeInstanceOf(TemplateError);
    expect(error).toMatchObject({ segments: 2, maxSegments: 1 });
    expect(error.message).toBe(
      "the SMS needs 2 segments, over the cap of 1 (channels.sms.maxSegments), even with every name from the purchase shortened to one character (208 characters, GSM-7, 160 characters per message)",
    );
    expect(error.file).toBe(file);
  });
});

describe("check", () => {
  it("fails an SMS template that cannot fit the largest order even with names shortened", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "followups-sms-"));
    temporaryDirs.push(dir);
    const file = path.join(dir, "templates", "check-in", "en.text.liquid");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      "You bought:\n{% for item in order.items %}{{ item.name }}\n{% endfor %}",
    );
    const rules = parseRules(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en }",
        "optOutConfirmation: false",
        "rules:",
        "  - id: big-ticket",
        "    steps:",
        "      - { kind: check-in, channel: sms, template: check-in, delay: P3M }",
      ].join("\n"),
      "rules.yaml",
    );
    if (!rules.ok) throw new Error(JSON.stringify(rules.problems));
    const loaded = await loadTemplates(dir, rules.rules);
    expect(loaded.ok ? [] : loaded.problems).toEqual([
      {
        file,
        line: 0,
        column: 0,
        path: "",
        message: expect.stringMatching(
          /^too long for an SMS with the largest order the event contract allows \(500 items, names of 300 characters\): the SMS needs \d+ segments, over the cap of 3 \(channels\.sms\.maxSegments\), even with every name from the purchase shortened to one character/,
        ),
      },
    ]);
  });
});

describe("the first SMS to a number says how to opt out", () => {
  it.each([
    [undefined, "Reply STOP to opt out"],
    ["en-GB", "Reply STOP to opt out"],
    ["de", "Antworten Sie STOP zum Abmelden"],
    ["de-AT", "Antworten Sie STOP zum Abmelden"],
    ["fr", "Reply STOP to opt out"],
  ])("locale %s: the text ends with the line %j, on its own line", async (locale, line) => {
    const text = await checkIn({ customer: { locale } }, { firstSmsToNumber: true });
    expect(text.endsWith(`\n${line}`)).toBe(true);
    expect(text.split("\n").filter((l) => l === line)).toHaveLength(1);
  });

  it("later SMS to the number do not carry it", async () => {
    const text = await checkIn({}, { firstSmsToNumber: false });
    expect(text).not.toMatch(/STOP/);
    // The same message, less the line.
    const first = await checkIn({}, { firstSmsToNumber: true });
    expect(first).toBe(`${text}\nReply STOP to opt out`);
  });

  it("the line counts towards the cap: a long name is cut further, the line is kept whole", async () => {
    const text = await checkIn({ items: tv(LONG_UCS2_NAME) }, { firstSmsToNumber: true });
    expect(countSmsSegments(text)).toBeLessThanOrEqual(3);
    expect(text.endsWith("\nReply STOP to opt out")).toBe(true);
    expect(text).toMatch(/Aurora 55″ OLED TV – with stand[^…]*…/);
    const without = await checkIn({ items: tv(LONG_UCS2_NAME) }, { firstSmsToNumber: false });
    const kept = (body: string) => /Aurora[^…]*…/.exec(body)?.[0].length ?? 0;
    expect(kept(text)).toBeLessThan(kept(without));
  });

  it("names the sender: the shop's name from the rules is in the shipped check-in", async () => {
    const rules = { ...shippedRules, shopName: "Corner Electronics" };
    for (const locale of ["en", "de"]) {
      const text = await checkIn({ customer: { locale } }, { rules });
      expect(text.startsWith("Corner Electronics: ")).toBe(true);
    }
  });

  it("check fails a check-in that fits the cap only without the opt-out line", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "followups-sms-"));
    temporaryDirs.push(dir);
    const file = path.join(dir, "templates", "check-in", "en.text.liquid");
    await mkdir(path.dirname(file), { recursive: true });
    // 158 characters with the sample's first name and item: 1 segment, 2 with the opt-out line.
    await writeFile(
      file,
      `Hi {{ customer.firstName | default: "there" }}, how is your {{ order.items.first.name }}? ${"Tell us. ".repeat(12)}`,
    );
    const rules = parseRules(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en }",
        "optOutConfirmation: false",
        "channels: { sms: { ratePerSecond: 5, maxSegments: 1 } }",
        "rules:",
        "  - id: big-ticket",
        "    steps:",
        "      - { kind: check-in, channel: sms, template: check-in, delay: P3M }",
      ].join("\n"),
      "rules.yaml",
    );
    if (!rules.ok) throw new Error(JSON.stringify(rules.problems));
    const loaded = await loadTemplates(dir, rules.rules);
    expect(loaded.ok ? [] : loaded.problems).toEqual([
      {
        file,
        line: 0,
        column: 0,
        path: "",
        message: expect.stringMatching(
          /^renders to 2 SMS segments with the sample and the opt-out line "Reply STOP to opt out" that the first SMS to a number carries \(\d+ characters, GSM-7, 160 characters per message\); channels\.sms\.maxSegments allows 1$/,
        ),
      },
    ]);
  });
});
