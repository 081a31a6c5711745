import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatProblem } from "../../src/config/config-files.js";
import { loadConfig } from "../../src/config/load-config.js";
import { parseRules } from "../../src/config/load-rules.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { loadTemplates } from "../../src/templates/load-templates.js";
import { renderOptOutConfirmation } from "../../src/templates/opt-out-confirmation.js";
import type { TemplateSet } from "../../src/templates/template-set.js";
import { rulesFrom, rulesProblems } from "../support/fixtures.js";

/**
 * Issue 11, item 3 (template side): a number that texts STOP gets at most one confirmation, from
 * the opt-out-confirmation template, when the rules' optOutConfirmation is on (the default).
 */

const temporaryDirs: string[] = [];
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const SMS_RULES = (extra: string[] = []) =>
  [
    "version: 1",
    "defaults: { timezone: Europe/London, currency: GBP, locale: en }",
    ...extra,
    "rules:",
    "  - id: big-ticket",
    "    steps:",
    "      - { kind: check-in, channel: sms, template: ping, delay: P3M }",
    "",
  ].join("\n");

async function templatesDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "followups-confirmation-"));
  temporaryDirs.push(dir);
  for (const [name, content] of Object.entries({ "ping/en.text.liquid": "All well?", ...files })) {
    const file = path.join(dir, "templates", name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  return dir;
}

async function checked(rulesText: string, files: Record<string, string>) {
  const rules = parseRules(rulesText, "rules.yaml");
  if (!rules.ok) throw new Error(JSON.stringify(rules.problems));
  const dir = await templatesDir(files);
  const result = await loadTemplates(dir, rules.rules);
  return { dir, rules: rules.rules, result };
}

describe("the rules' optOutConfirmation", () => {
  it("is on by default and can be turned off", () => {
    expect(rulesFrom(SMS_RULES()).optOutConfirmation).toBe(true);
    expect(rulesFrom(SMS_RULES(["optOutConfirmation: false"])).optOutConfirmation).toBe(false);
  });

  it("is true or false", () => {
    expect(rulesProblems(SMS_RULES(["optOutConfirmation: sometimes"]))).toEqual([
      'rules.yaml:3:1 optOutConfirmation: expected true or false (got "sometimes")',
    ]);
  });

  it("reserves the template id opt-out-confirmation: no rule step may use it", () => {
    const text = SMS_RULES().replace("template: ping", "template: opt-out-confirmation");
    expect(rulesProblems(text)).toEqual([
      "rules.yaml:6:41 rules[0].steps[0].template: opt-out-confirmation is the SMS that confirms an opt-out (optOutConfirmation); a step cannot send it, give the step another template",
    ]);
  });
});

describe("renderOptOutConfirmation with the shipped config", () => {
  let rules: RuleSet;
  let templates: TemplateSet;
  beforeAll(async () => {
    const result = await loadConfig("config");
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join("\n"));
    rules = result.config.rules;
    templates = result.config.templates;
  });

  it.each([
    [undefined, "You will get no more messages from Corner Shop."],
    ["en-GB", "You will get no more messages from Corner Shop."],
    ["fr", "You will get no more messages from Corner Shop."],
    ["de", "Sie erhalten keine Nachrichten mehr von Corner Shop."],
    ["de-AT", "Sie erhalten keine Nachrichten mehr von Corner Shop."],
  ])("locale %s → %j", async (locale, expected) => {
    const text = await renderOptOutConfirmation(templates, locale, {
      ...rules,
      shopName: "Corner Shop",
    });
    expect(text).toBe(expected);
  });

  it("is null when the rules turn confirmations off", async () => {
    const off = { ...rules, optOutConfirmation: false };
    expect(await renderOptOutConfirmation(templates, "en", off)).toBeNull();
  });
});

describe("check validates the confirmation like other SMS templates", () => {
  it("requires it in the default locale when the rules send SMS and confirm opt-outs", async () => {
    const { dir, result } = await checked(SMS_RULES(), {});
    expect(result.ok ? [] : result.problems).toEqual([
      {
        file: path.join(dir, "templates", "opt-out-confirmation", "en.text.liquid"),
        line: 0,
        column: 0,
        path: "",
        message:
          "missing: rules send SMS and optOutConfirmation is on, so the opt-out confirmation needs this file for the default locale en (or set optOutConfirmation: false)",
      },
    ]);
  });

  it("is not needed with optOutConfirmation: false", async () => {
    const { result } = await checked(SMS_RULES(["optOutConfirmation: false"]), {});
    expect(result.ok).toBe(true);
  });

  it("sees only the shop: a variable about a customer or an order is unknown", async () => {
    const { dir, result } = await checked(SMS_RULES(), {
      "opt-out-confirmation/en.text.liquid": "Bye {{ customer.firstName }}, from {{ shop.name }}.",
    });
    expect(result.ok ? [] : result.problems).toEqual([
      expect.objectContaining({
        file: path.join(dir, "templates", "opt-out-confirmation", "en.text.liquid"),
        line: 1,
        message: "undefined variable: customer (the template context has shop)",
      }),
    ]);
  });

  it("fails one that renders over channels.sms.maxSegments, or to nothing", async () => {
    const long = await checked(SMS_RULES(), {
      "opt-out-confirmation/en.text.liquid": `${"You will get no more messages from us. ".repeat(13)}{{ shop.name }}`,
      "opt-out-confirmation/de.text.liquid": "{% if shop.address %}Tschüss{% endif %}",
    });
    expect(long.result.ok ? [] : long.result.problems.map((p) => [p.file, p.message])).toEqual([
      [
        path.join(long.dir, "templates", "opt-out-confirmation", "de.text.liquid"),
        "renders to empty text (the opt-out confirmation)",
      ],
      [
        path.join(long.dir, "templates", "opt-out-confirmation", "en.text.liquid"),
        expect.stringMatching(
          /^renders to 4 SMS segments \(\d+ characters, GSM-7, 160 characters per message\); channels\.sms\.maxSegments allows 3$/,
        ),
      ],
    ]);
  });
});
