import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/config-files.js";
import { loadRules, parseRules } from "../../src/config/load-rules.js";
import type { RuleSet, StepKind } from "../../src/domain/rules.js";
import { countSmsSegments, smsEncoding } from "../../src/domain/sms-segments.js";
import { loadTemplates } from "../../src/templates/load-templates.js";
import {
  buildTemplateContext,
  type PurchaseSnapshot,
  SAMPLE_TEMPLATE_CONTEXT,
  sampleTemplateContext,
} from "../../src/templates/template-context.js";
import { localeFallbacks, type TemplateSet } from "../../src/templates/template-set.js";

const temporaryDirs: string[] = [];
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

interface Step {
  kind: StepKind;
  channel: "email" | "sms" | "voice";
  template: string;
}

const EMAIL: Step = { kind: "thank-you", channel: "email", template: "hello" };
const SMS: Step = { kind: "check-in", channel: "sms", template: "ping" };

function rulesFor(steps: readonly Step[], maxSegments = 3, locale = "en"): RuleSet {
  const yaml = [
    "version: 1",
    `defaults: { timezone: Europe/London, currency: GBP, locale: ${locale} }`,
    `channels: { sms: { ratePerSecond: 5, maxSegments: ${maxSegments} } }`,
    'shop: { name: Corner Shop, address: "1 High Street, London N1 1AA" }',
    "optOutConfirmation: false",
    "rules:",
    "  - id: everyone",
    "    steps:",
    ...steps.map(
      (step, i) =>
        `      - { id: s${i}, kind: ${step.kind}, channel: ${step.channel}, template: ${step.template}, delay: PT1H }`,
    ),
  ].join("\n");
  const result = parseRules(yaml, "rules.yaml");
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.rules;
}

/** Writes `files` (path under templates/ → content) into a fresh config dir. */
async function configDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "followups-templates-"));
  temporaryDirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, "templates", name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  return dir;
}

const GOOD_EMAIL = {
  "hello/en.subject.liquid": "Thanks, {{ customer.firstName | default: 'friend' }}",
  "hello/en.text.liquid": "Hi {{ customer.name | default: 'there' }}\n",
  "hello/en.html.liquid": "<p>Hi {{ customer.name | default: 'there' }}</p>",
};
const GOOD_SMS = {
  "ping/en.text.liquid": "All well, {{ customer.firstName | default: 'friend' }}?",
};

async function load(
  files: Record<string, string>,
  steps: readonly Step[],
  maxSegments = 3,
  locale = "en",
) {
  const dir = await configDir(files);
  return { dir, result: await loadTemplates(dir, rulesFor(steps, maxSegments, locale)) };
}

async function loaded(files: Record<string, string>, steps: readonly Step[]): Promise<TemplateSet> {
  const { result } = await load(files, steps);
  if (!result.ok) throw new Error(JSON.stringify(result.problems, null, 2));
  return result.templates;
}

async function problemsOf(
  files: Record<string, string>,
  steps: readonly Step[],
  maxSegments = 3,
  locale = "en",
): Promise<{ dir: string; problems: ConfigProblem[] }> {
  const { dir, result } = await load(files, steps, maxSegments, locale);
  if (result.ok) throw new Error("expected problems, templates loaded");
  return { dir, problems: result.problems };
}

const SHOP = { name: "Corner Shop", address: ["Hauptstraße 1", "10115 Berlin"] };

const purchase: PurchaseSnapshot = {
  orderId: "ORD-1",
  occurredAt: "2026-03-12T23:30:00Z",
  customer: { id: "cus_1", name: "Ana María López" },
  items: [
    {
      sku: "TV-1",
      name: "Television",
      category: "televisions",
      quantity: 1,
      unitPrice: { minor: 129_900, currency: "EUR" },
    },
  ],
  total: { minor: 129_900, currency: "EUR" },
  store: { id: "store-1", name: "Berlin Mitte" },
};

function contextFor(overrides: Partial<PurchaseSnapshot>, channel: "email" | "sms" = "email") {
  return buildTemplateContext({
    purchase: { ...purchase, ...overrides },
    step: { kind: "thank-you", channel },
    locale: "de-AT",
    timezone: "Australia/Sydney",
    discount: null,
    unsubscribeUrl: null,
    shop: SHOP,
  });
}

describe("buildTemplateContext", () => {
  it("formats amounts and dates for the customer's locale and zone", () => {
    const context = contextFor({});
    expect(context.customer).toEqual({ id: "cus_1", name: "Ana María López", firstName: "Ana" });
    expect(context.order.total).toBe("€\u00a01.299,00");
    expect(context.order.items[0]?.unitPrice).toBe("€\u00a01.299,00");
    // 23:30 UTC on 12 March is already 13 March in Sydney.
    expect(context.order.purchasedAt).toBe("13. März 2026");
    expect(context.store).toEqual({ id: "store-1", name: "Berlin Mitte" });
    expect(context.discount).toBeNull();
    expect(context.unsubscribeUrl).toBeNull();
  });

  it("keeps every key, null when the purchase has no value", () => {
    const context = contextFor({ customer: { id: "cus_2" }, store: undefined });
    expect(context.customer).toEqual({ id: "cus_2", name: null, firstName: null });
    expect(context.store).toEqual({ id: null, name: null });
  });

  it("uses plain spaces for SMS so a price does not force UCS-2", () => {
    const context = contextFor({}, "sms");
    expect(context.order.total).toBe("€ 1.299,00");
    expect(smsEncoding(context.order.total).encoding).toBe("GSM-7");
  });

  it("formats a discount's last day on the customer's calendar", () => {
    const context = buildTemplateContext({
      purchase,
      step: { kind: "discount", channel: "email" },
      locale: "en-GB",
      timezone: "Europe/London",
      discount: { code: "THANKS-AAAA-BBBB-CCCC", percent: 10, validUntil: "2026-04-11" },
      unsubscribeUrl: "https://shop.example/u/1",
      shop: SHOP,
    });
    expect(context.discount).toEqual({
      code: "THANKS-AAAA-BBBB-CCCC",
      percent: 10,
      validUntil: "11 April 2026",
    });
    expect(context.order.total).toBe("€1,299.00");
  });

  it.each([
    ["hu", { minor: 129_950, currency: "HUF" }, "1299,50\u00a0Ft"],
    ["hu", { minor: 130_000, currency: "HUF" }, "1300\u00a0Ft"],
    ["en-GB", { minor: 129_950, currency: "HUF" }, "HUF\u00a01,299.50"],
    ["id", { minor: 1_500_000, currency: "IDR" }, "Rp\u00a015.000"],
    ["en", { minor: 5_500, currency: "IQD" }, "IQD\u00a05.500"],
    ["ja", { minor: 1999, currency: "JPY" }, "￥1,999"],
  ])("shows an amount in %s as given: %j is %s, never rounded", (locale, total, shown) => {
    const context = buildTemplateContext({
      purchase: { ...purchase, total, items: [] },
      step: { kind: "thank-you", channel: "email" },
      locale,
      timezone: "UTC",
      discount: null,
      unsubscribeUrl: null,
      shop: SHOP,
    });
    expect(context.order.total).toBe(shown);
  });

  it("falls back to English formatting for a locale Intl does not accept", () => {
    const context = buildTemplateContext({
      purchase,
      step: { kind: "thank-you", channel: "email" },
      locale: "not a locale",
      timezone: "UTC",
      discount: null,
      unsubscribeUrl: null,
      shop: SHOP,
    });
    expect(context.order.total).toBe("€1,299.00");
  });
});

describe("shipped templates", () => {
  it("pass the check against the shipped rules", async () => {
    const rules = await loadRules("config");
    if (!rules.ok) throw new Error(JSON.stringify(rules.problems));
    const result = await loadTemplates("config", rules.rules);
    if (!result.ok) throw new Error(JSON.stringify(result.problems, null, 2));
    expect(result.templates.templateIds).toEqual(
      expect.arrayContaining(["thank-you", "check-in", "accessories-discount", "loyalty-discount"]),
    );
  });

  it.each(["en", "de"])(
    "keep the %s check-in SMS to one GSM-7 segment with the sample",
    async (locale) => {
      const rules = await loadRules("config");
      if (!rules.ok) throw new Error("rules invalid");
      const result = await loadTemplates("config", rules.rules);
      if (!result.ok) throw new Error("templates invalid");
      const step = { kind: "check-in", channel: "sms" } as const;
      const rendered = await result.templates.render(
        "check-in",
        "sms",
        locale,
        sampleTemplateContext({ step, locale }),
      );
      expect(smsEncoding(rendered.text)).toEqual({ encoding: "GSM-7" });
      expect(rendered.text.length).toBeLessThanOrEqual(160);
      expect(rendered.text).toContain("Alexandra");
      expect(rendered.text).toContain("Northgate High Street");
      expect(rendered.text).toContain("?");
    },
  );

  it.each(["accessories-discount", "loyalty-discount"])(
    "show the code, percent and last day in %s",
    async (template) => {
      const rules = await loadRules("config");
      if (!rules.ok) throw new Error("rules invalid");
      const result = await loadTemplates("config", rules.rules);
      if (!result.ok) throw new Error("templates invalid");
      const context = sampleTemplateContext({
        step: { kind: "discount", channel: "email" },
        locale: "de",
        discount: { code: "THANKS-7KQ2-M9XD-4TBW", percent: 12, validUntil: "2026-05-01" },
      });
      const rendered = await result.templates.render(template, "email", "de-AT", context);
      for (const part of [rendered.text, rendered.html ?? ""]) {
        expect(part).toContain("THANKS-7KQ2-M9XD-4TBW");
        expect(part).toContain("12 %");
        expect(part).toContain("1. Mai 2026");
        expect(part).toContain("Aurora 55-inch OLED TV");
      }
    },
  );
});

describe("rendering", () => {
  const evil = contextFor({ customer: { id: "cus_x", name: `<script>alert("x")</script> & co` } });

  it("escapes HTML in the html part only", async () => {
    const templates = await loaded(GOOD_EMAIL, [EMAIL]);
    const rendered = await templates.render("hello", "email", "en", evil);
    expect(rendered.html).toBe(
      "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</p>",
    );
    expect(rendered.text).toBe(`Hi <script>alert("x")</script> & co`);
    expect(rendered.subject).toBe('Thanks, <script>alert("x")</script>');
  });

  it("gives SMS the text part only, trimmed", async () => {
    const templates = await loaded(
      { ...GOOD_EMAIL, "hello/en.text.liquid": "\n  Hi  \n\n\n\nthere\n" },
      [{ ...EMAIL, channel: "sms" }],
    );
    const rendered = await templates.render("hello", "sms", "en", SAMPLE_TEMPLATE_CONTEXT);
    expect(rendered).toEqual({ text: "Hi\n\nthere" });
  });

  it("makes the subject one line", async () => {
    const templates = await loaded(
      { ...GOOD_EMAIL, "hello/en.subject.liquid": "Thanks\n  {{ customer.id }}\n" },
      [EMAIL],
    );
    const rendered = await templates.render("hello", "email", "en", SAMPLE_TEMPLATE_CONTEXT);
    expect(rendered.subject).toBe("Thanks cus_8f2k1");
  });

  it.each([
    ["de-AT", "de-AT"],
    ["de-at", "de-AT"],
    ["de-CH", "de"],
    ["de", "de"],
    ["fr-FR", "en"],
    [undefined, "en"],
    ["not a locale", "en"],
  ])("falls back from locale %s to %s", async (locale, expected) => {
    const files = {
      ...GOOD_SMS,
      "ping/de.text.liquid": "de",
      "ping/de-AT.text.liquid": "de-AT",
      "ping/en.text.liquid": "en",
    };
    const templates = await loaded(files, [SMS]);
    const rendered = await templates.render("ping", "sms", locale, SAMPLE_TEMPLATE_CONTEXT);
    expect(rendered.text).toBe(expected);
  });

  it("skips a locale that lacks the parts the channel needs", async () => {
    const templates = await loaded({ ...GOOD_EMAIL, "hello/de.text.liquid": "Hallo" }, [
      { ...EMAIL, channel: "sms" },
    ]);
    const email = templates.pick("hello", "email", "de");
    expect(email.locale).toBe("en");
    expect(templates.pick("hello", "sms", "de").locale).toBe("de");
  });

  it("builds the fallback chain from the most specific tag, then the default's", () => {
    expect(localeFallbacks("zh-Hant-TW", "en")).toEqual(["zh-Hant-TW", "zh-Hant", "zh", "en"]);
    expect(localeFallbacks("en-GB", "en")).toEqual(["en-GB", "en"]);
    expect(localeFallbacks("de-AT", "en-GB")).toEqual(["de-AT", "de", "en-GB", "en"]);
    expect(localeFallbacks(undefined, "en-GB")).toEqual(["en-GB", "en"]);
  });

  it("lets a regional default locale (en-GB) use the language's files (en)", async () => {
    const { result } = await load(GOOD_SMS, [SMS], 3, "en-GB");
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    const rendered = await result.templates.render("ping", "sms", "fr", SAMPLE_TEMPLATE_CONTEXT);
    expect(rendered.text).toBe("All well, Alexandra?");
  });

  it("changes its version when a file changes", async () => {
    const first = await loaded(GOOD_SMS, [SMS]);
    const second = await loaded({ "ping/en.text.liquid": "Changed" }, [SMS]);
    const again = await loaded(GOOD_SMS, [SMS]);
    expect(first.version).not.toBe(second.version);
    expect(first.version).toBe(again.version);
  });
});

describe("check", () => {
  it("reports an unknown variable with file and line, even in a branch the samples skip", async () => {
    const { dir, problems } = await problemsOf(
      {
        ...GOOD_SMS,
        "ping/en.text.liquid":
          "Hello\n{% if order.id == 'never' %}\n  {{ customer.nmae }}\n{% endif %}",
      },
      [SMS],
    );
    expect(problems).toEqual([
      {
        file: path.join(dir, "templates", "ping", "en.text.liquid"),
        line: 3,
        column: 6,
        path: "",
        message: expect.stringMatching(
          /^undefined variable: customer\.nmae \(customer has id, name, firstName\)$/,
        ),
      },
    ]);
  });

  it("refuses discount.* in a template only non-discount steps use: it would render as nothing", async () => {
    const { dir, problems } = await problemsOf(
      { "ping/en.text.liquid": "Hi! Use code {{ discount.code }} for {{ discount.percent }}% off" },
      [SMS],
    );
    const file = path.join(dir, "templates", "ping", "en.text.liquid");
    expect(problems).toEqual([
      expect.objectContaining({
        file,
        line: 1,
        message: expect.stringMatching(
          /^discount\.code renders as nothing: discount is given to discount steps only, and this template is used by everyone\.s0 \(check-in\)/,
        ),
      }),
      expect.objectContaining({
        file,
        message: expect.stringMatching(/^discount\.percent renders as nothing/),
      }),
    ]);
    // The same template is fine once a discount step uses it too (it may test {% if discount %}).
    await loaded(
      { "ping/en.text.liquid": "Hello{% if discount %}, code {{ discount.code }}{% endif %}" },
      [SMS, { kind: "discount", channel: "sms", template: "ping" }],
    );
  });

  it("refuses unsubscribeUrl in a template only transactional steps use: they carry no link, so it is always empty", async () => {
    const { dir, problems } = await problemsOf(
      {
        ...GOOD_EMAIL,
        "hello/en.text.liquid": "Thanks for your order.\nUnsubscribe: {{ unsubscribeUrl }}\n",
      },
      [EMAIL],
    );
    expect(problems).toEqual([
      {
        file: path.join(dir, "templates", "hello", "en.text.liquid"),
        line: 2,
        column: 17,
        path: "",
        message:
          "unsubscribeUrl renders as nothing: only marketing steps carry an unsubscribe link, and this template is used by everyone.s0 (transactional), where it is empty; remove it, or give the steps purpose: marketing",
      },
    ]);
    // The same template is fine once a marketing step uses it too (it may test {% if unsubscribeUrl %}).
    await loaded(
      {
        "hello/en.subject.liquid": "Thanks",
        "hello/en.text.liquid":
          "Thanks. {% if discount %}Code {{ discount.code }}. {% endif %}{{ shop.address }}{% if unsubscribeUrl %} Unsubscribe: {{ unsubscribeUrl }}{% endif %}",
      },
      [EMAIL, { kind: "discount", channel: "email", template: "hello" }],
    );
  });

  it("refuses a discount step's template that never shows the code: the offer would go without it", async () => {
    const { dir, problems } = await problemsOf(
      {
        "ping/en.text.liquid":
          "Thanks for shopping with us: {{ discount.percent }}% off your next visit!",
      },
      [{ kind: "discount", channel: "sms", template: "ping" }],
    );
    expect(problems).toEqual([
      {
        file: path.join(dir, "templates", "ping", "en.text.liquid"),
        line: 0,
        column: 0,
        path: "",
        message:
          "never shows discount.code with the full sample for a discount by sms: the customer would get the offer without its code; show {{ discount.code }}, or make the step kind custom",
      },
    ]);
  });

  it("refuses a mapping output whole: customers would read [object Object]", async () => {
    const { dir, problems } = await problemsOf(
      { ...GOOD_EMAIL, "hello/en.text.liquid": "Your order {{ order }} is on its way." },
      [EMAIL],
    );
    expect(problems).toEqual(
      ["full", "sparse"].map((sample) => ({
        file: path.join(dir, "templates", "hello", "en.text.liquid"),
        line: 0,
        column: 0,
        path: "",
        message: `renders "[object Object]" with the ${sample} sample for a thank-you by email: a mapping (order, customer, an item…) is output whole; output one of its fields, such as {{ order.id }}`,
      })),
    );
  });

  it("reports an unknown property of a loop variable by rendering the sample", async () => {
    const { problems } = await problemsOf(
      { "ping/en.text.liquid": "Items:\n{% for item in order.items %}{{ item.nme }}{% endfor %}" },
      [SMS],
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      line: 2,
      message: expect.stringMatching(/undefined variable: item\.nme/),
    });
  });

  it("reports an unknown filter and a syntax error with line and column", async () => {
    const { dir, problems } = await problemsOf(
      {
        ...GOOD_EMAIL,
        "hello/en.subject.liquid": "Hi {{ customer.name | shout }}",
        "hello/en.text.liquid": "Hi\n\n{% if customer.name %}\nno end",
      },
      [EMAIL],
    );
    const templates = path.join(dir, "templates", "hello");
    expect(problems).toEqual([
      expect.objectContaining({
        file: path.join(templates, "en.subject.liquid"),
        line: 1,
        message: "Liquid: undefined filter: shout",
      }),
      expect.objectContaining({
        file: path.join(templates, "en.text.liquid"),
        line: 3,
        column: 1,
        message: "Liquid: tag {% if customer.name %} not closed",
      }),
    ]);
  });

  it("names the template and channel when the default locale is missing, all at once", async () => {
    const { dir, problems } = await problemsOf(
      { "hello/de.subject.liquid": "x", "hello/de.text.liquid": "x" },
      [EMAIL, SMS],
    );
    const missing = (template: string, file: string) => path.join(dir, "templates", template, file);
    expect(problems.map((p) => [p.file, p.line])).toEqual([
      [missing("hello", "en.subject.liquid"), 0],
      [missing("hello", "en.text.liquid"), 0],
      [missing("ping", "en.text.liquid"), 0],
    ]);
    expect(problems[0]?.message).toMatch(
      /template hello is used for email by everyone\.s0 and needs this file for the default locale en$/,
    );
    expect(problems[2]?.message).toMatch(/template ping is used for sms by everyone\.s1/);
  });

  it("names the language's file when a regional default locale has no template", async () => {
    const { dir, problems } = await problemsOf({}, [SMS], 3, "en-GB");
    expect(problems).toEqual([
      expect.objectContaining({
        file: path.join(dir, "templates", "ping", "en.text.liquid"),
        message: expect.stringContaining("for the default locale en-GB (en-GB falls back to en)"),
      }),
    ]);
  });

  it("reports a locale that has only some of the parts email needs", async () => {
    const { dir, problems } = await problemsOf({ ...GOOD_EMAIL, "hello/de.text.liquid": "Hallo" }, [
      EMAIL,
    ]);
    expect(problems).toEqual([
      expect.objectContaining({
        file: path.join(dir, "templates", "hello", "de.subject.liquid"),
        message: expect.stringMatching(
          /^missing: de has text but template hello is used for email/,
        ),
      }),
    ]);
  });

  it("reports an SMS longer than channels.sms.maxSegments with the sample", async () => {
    const { problems } = await problemsOf(
      { "ping/en.text.liquid": `${"Thanks for your purchase. ".repeat(6)}{{ customer.name }}` },
      [SMS],
      1,
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).toMatch(
      /^renders to 2 SMS segments with the sample and the opt-out line "Reply STOP to opt out" that the first SMS to a number carries \(\d+ characters, GSM-7.*\); channels\.sms\.maxSegments allows 1$/,
    );
  });

  it("measures a discount SMS with the longest code its rules issue, not the default prefix", async () => {
    const dir = await configDir({
      "offer/en.text.liquid": `${"x".repeat(116)} {{ discount.code }}`,
    });
    const rules = (prefix: string) => {
      const result = parseRules(
        [
          "version: 1",
          "defaults: { timezone: Europe/London, currency: GBP }",
          'shop: { name: Corner Shop, address: "1 High Street, London N1 1AA" }',
          "optOutConfirmation: false",
          "channels: { sms: { ratePerSecond: 5, maxSegments: 1 } }",
          "rules:",
          "  - id: plain",
          "    steps: [{ kind: discount, channel: sms, template: offer, delay: P1D }]",
          "  - id: vip",
          `    discount: { codePrefix: ${prefix} }`,
          "    steps: [{ kind: discount, channel: sms, template: offer, delay: P2D }]",
        ].join("\n"),
        "rules.yaml",
      );
      if (!result.ok) throw new Error(JSON.stringify(result.problems));
      return result.rules;
    };
    // THANKS-…: one segment with the opt-out line; VIPCUSTOMERS-… is six characters longer.
    expect((await loadTemplates(dir, rules("THANKS"))).ok).toBe(true);
    const result = await loadTemplates(dir, rules("VIPCUSTOMERS"));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((problem) => problem.message)).toEqual([
      expect.stringMatching(/^renders to 2 SMS segments with the sample .*maxSegments allows 1$/),
    ]);
  });

  it("checks voice templates: a language calls speak, at most 800 characters, no SMS segment cap", async () => {
    const CALL: Step = { kind: "check-in", channel: "voice", template: "call" };
    const spoken = `Hello {{ customer.firstName | default: 'there' }}. ${"We would like to hear from you. ".repeat(8)}`;
    // Longer than one SMS segment with maxSegments 1: fine for a call.
    await loaded({ "call/en.text.liquid": spoken, "call/de.text.liquid": "Guten Tag" }, [CALL]);
    const { dir, problems } = await problemsOf(
      {
        "call/en.text.liquid": `Hello. ${"Thank you for your purchase. ".repeat(30)}`,
        "call/fr.text.liquid": "Bonjour",
      },
      [CALL],
      1,
    );
    expect(problems).toEqual([
      expect.objectContaining({
        file: path.join(dir, "templates", "call", "en.text.liquid"),
        message: expect.stringMatching(
          /^a call's message renders to \d+ characters with the \w+ sample for a check-in by voice; calls speak at most 800 \(about a minute\): keep it short$/,
        ),
      }),
      expect.objectContaining({
        file: path.join(dir, "templates", "call", "fr.text.liquid"),
        message:
          "template call is used for voice by everyone.s0, and calls are spoken in en or de only: fr has no keypad instructions; remove this file or use the template for SMS or email",
      }),
    ]);
  });

  it("says which character forced UCS-2 when that makes an SMS too long", async () => {
    const body = "It’s been a while. ".repeat(4);
    expect(countSmsSegments(body)).toBe(2);
    const { problems } = await problemsOf({ "ping/en.text.liquid": body }, [SMS], 1);
    expect(problems[0]?.message).toContain('UCS-2, 70 characters per message, because of "’"');
  });

  it("reports a template that renders to nothing", async () => {
    const { problems } = await problemsOf(
      { "ping/en.text.liquid": "{% if customer.name %}Hi {{ customer.name }}{% endif %}" },
      [SMS],
    );
    expect(problems).toEqual([
      expect.objectContaining({
        message: "renders to empty text with the sparse sample for a check-in by sms",
      }),
    ]);
  });

  it("refuses includes: templates cannot read other files", async () => {
    const { problems } = await problemsOf({ "ping/en.text.liquid": "Hi\n{% include 'footer' %}" }, [
      SMS,
    ]);
    expect(problems).toEqual([
      expect.objectContaining({
        line: 2,
        message: expect.stringMatching(/^Liquid: \{% include %\} is not available/),
      }),
    ]);
  });

  it("refuses a file that is not UTF-8 (an editor's Latin-1), at its first bad byte: customers would get U+FFFD for it", async () => {
    const dir = await configDir(GOOD_SMS);
    const file = path.join(dir, "templates", "ping", "de.text.liquid");
    await writeFile(file, Buffer.from("Hallo!\nAlles gut f\u00fcr Sie?", "latin1"));
    const result = await loadTemplates(dir, rulesFor([SMS]));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      {
        file,
        line: 2,
        column: 12,
        path: "",
        message:
          "not UTF-8 (byte 0xFC): save the file as UTF-8 (read as it is, that character would be \u{FFFD})",
      },
    ]);
  });

  it("follows symbolic links to template files and folders, as volume mounts (Kubernetes) make them", async () => {
    const dir = await configDir({ ...GOOD_EMAIL, ...GOOD_SMS });
    const templates = path.join(dir, "templates");
    // ping/ is a link to a folder kept elsewhere; hello/en.text.liquid a link to a file.
    await mkdir(path.join(dir, "store"));
    await rename(path.join(templates, "ping"), path.join(dir, "store", "ping"));
    await symlink(path.join("..", "store", "ping"), path.join(templates, "ping"));
    await rename(
      path.join(templates, "hello", "en.text.liquid"),
      path.join(dir, "store", "hello.txt"),
    );
    await symlink(
      path.join("..", "..", "store", "hello.txt"),
      path.join(templates, "hello", "en.text.liquid"),
    );
    const result = await loadTemplates(dir, rulesFor([EMAIL, SMS]));
    if (!result.ok) throw new Error(JSON.stringify(result.problems, null, 2));
    expect(result.templates.templateIds).toEqual(["hello", "ping"]);
  });

  it("reports files it does not understand and ignores dot files and top-level files", async () => {
    const { dir, problems } = await problemsOf(
      {
        ...GOOD_SMS,
        "ping/en.txt.liquid": "typo",
        "ping/.en.text.liquid.swp": "editor backup",
        "README.md": "notes for operators",
        "Bad_Name/en.text.liquid": "x",
      },
      [SMS],
    );
    expect(problems.map((p) => path.relative(dir, p.file))).toEqual([
      path.join("templates", "Bad_Name"),
      path.join("templates", "ping", "en.txt.liquid"),
    ]);
  });

  it("renders a discount template with an offer and a thank-you without one", async () => {
    const files = {
      "offer/en.subject.liquid": "{{ discount.percent }}% off",
      "offer/en.text.liquid":
        "Code {{ discount.code }} until {{ discount.validUntil }}\n{{ shop.name }}, {{ shop.address }}",
    };
    const templates = await loaded(files, [
      { kind: "discount", channel: "email", template: "offer" },
    ]);
    const rendered = await templates.render(
      "offer",
      "email",
      "en",
      sampleTemplateContext({ step: { kind: "discount", channel: "email" }, locale: "en" }),
    );
    expect(rendered.subject).toBe("10% off");
    expect(rendered.text).toBe(
      "Code THANKS-7KQ2-M9XD-4TBW until April 11, 2026\nYour shop, 1 High Street, London N1 1AA",
    );
  });
});
