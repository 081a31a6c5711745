import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmailMessage } from "../../src/channels/channel.js";
import { formatProblem } from "../../src/config/config-files.js";
import { loadConfig } from "../../src/config/load-config.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { findStep } from "../../src/domain/step-ref.js";
import { createMessageComposer } from "../../src/templates/compose-message.js";
import type { TemplateSet } from "../../src/templates/template-set.js";
import { item, purchase, rulesFrom, yaml } from "../support/fixtures.js";

/**
 * Issue 11, item 5: every marketing email shows the shop's postal address (CAN-SPAM; the
 * Impressum in Germany), so `check` requires shop.address when a rule sends marketing email.
 */

const temporaryDirs: string[] = [];
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A copy of the shipped config whose rules.yaml is `rules`. */
async function shippedConfigWith(rules: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "followups-address-"));
  temporaryDirs.push(dir);
  await cp("config", dir, { recursive: true });
  await writeFile(path.join(dir, "rules.yaml"), rules);
  return dir;
}

async function checkProblems(dir: string): Promise<string[]> {
  const result = await loadConfig(dir);
  return result.ok ? [] : result.problems.map(formatProblem);
}

const rulesWithSteps = (shop: string, steps: string) =>
  [
    "version: 1",
    "defaults: { timezone: Europe/London, currency: GBP }",
    `shop: ${shop}`,
    "rules:",
    "  - id: laptops",
    "    steps:",
    steps,
    "",
  ].join("\n");
const MARKETING_EMAIL =
  "        - { kind: discount, channel: email, template: accessories-discount, delay: P14D }";
const TRANSACTIONAL_EMAIL =
  "        - { kind: thank-you, channel: email, template: thank-you, delay: PT1H }";

describe("check requires shop.address when a rule sends marketing email", () => {
  it("a discount email without shop.address is one problem naming shop.address", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps("{ name: Corner Shop }", `${TRANSACTIONAL_EMAIL}\n${MARKETING_EMAIL}`),
    );
    expect(await checkProblems(dir)).toEqual([
      `${path.join(dir, "rules.yaml")} shop.address: required: laptops.discount sends marketing email, which must show the shop's postal address (CAN-SPAM; the Impressum in Germany); add it, lines separated by commas, such as shop: { name: Corner Shop, address: "Corner Shop Ltd, 1 High Street, London N1 1AA" }`,
    ]);
  });

  it("so does a custom step whose purpose is marketing", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps(
        "{ name: Corner Shop }",
        "        - { kind: custom, channel: email, template: thank-you, delay: P1D, purpose: marketing }",
      ),
    );
    expect(await checkProblems(dir)).toEqual([
      expect.stringContaining(
        "shop.address: required: laptops.custom sends marketing email, which must show",
      ),
    ]);
  });

  it("transactional email alone needs no address", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps("{ name: Corner Shop }", TRANSACTIONAL_EMAIL),
    );
    expect(await checkProblems(dir)).toEqual([]);
  });

  it("with an address, the shipped marketing templates pass", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps(
        '{ name: Corner Shop, address: "Corner Shop Ltd, 1 High Street, London N1 1AA" }',
        MARKETING_EMAIL,
      ),
    );
    expect(await checkProblems(dir)).toEqual([]);
  });

  it("a marketing template that does not show the address fails, naming the file", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps(
        '{ name: Corner Shop, address: "1 High Street, London N1 1AA" }',
        MARKETING_EMAIL,
      ),
    );
    const html = path.join(dir, "templates", "accessories-discount", "de.html.liquid");
    await writeFile(html, "<p>{{ discount.code }}</p>");
    expect(await checkProblems(dir)).toEqual([
      `${html} a marketing email must show the shop's postal address (shop.address in rules.yaml): "1 High Street" is missing with the full sample for a discount by email; add {{ shop.address }} or the lines of shop.addressLines`,
    ]);
  });

  it("checks the address with every sample: one shown for store purchases only fails", async () => {
    const dir = await shippedConfigWith(
      rulesWithSteps(
        '{ name: Corner Shop, address: "1 High Street, London N1 1AA" }',
        MARKETING_EMAIL,
      ),
    );
    const text = path.join(dir, "templates", "accessories-discount", "en.text.liquid");
    await writeFile(
      text,
      "Your code: {{ discount.code }}\n{% if store.name %}{{ shop.address }}{% endif %}\n",
    );
    expect(await checkProblems(dir)).toEqual([
      `${text} a marketing email must show the shop's postal address (shop.address in rules.yaml): "1 High Street" is missing with the sparse sample for a discount by email; add {{ shop.address }} or the lines of shop.addressLines`,
    ]);
  });

  it("reads the address as lines, split at commas and line breaks", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/Berlin, currency: EUR }
      shop:
        name: Müller Elektro
        address: |
          Müller Elektro GmbH, Hauptstraße 1
          10115 Berlin
      rules:
        - id: all
          steps: [{ kind: thank-you, channel: email, template: thank-you, delay: PT1H }]
    `);
    expect(rules.shopAddress).toEqual(["Müller Elektro GmbH", "Hauptstraße 1", "10115 Berlin"]);
  });
});

describe("the shipped marketing emails show the address", () => {
  let rules: RuleSet;
  let templates: TemplateSet;
  beforeAll(async () => {
    const result = await loadConfig("config");
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join("\n"));
    rules = result.config.rules;
    templates = result.config.templates;
  });

  it("the shipped rules name an address", () => {
    expect(rules.shopAddress.length).toBeGreaterThan(1);
  });

  it.each([
    ["accessories.discount", "en"],
    ["accessories.discount", "de"],
    ["loyal-customer.discount", "en"],
    ["loyal-customer.discount", "de"],
  ])("%s in %s: every address line in the text and the HTML", async (stepId, locale) => {
    const address = ["Corner Shop Ltd", "1 High Street", "London N1 1AA"];
    const withAddress = { ...rules, shopName: "Corner Shop", shopAddress: address };
    const found = findStep(withAddress, stepId);
    if (!found) throw new Error(`no ${stepId}`);
    const compose = createMessageComposer(() => templates, { discountSecret: "test-secret" });
    const message = (await compose({
      event: purchase({ customer: { locale }, items: [item("laptops", "899.00")] }),
      rule: found.rule,
      step: found.step,
      stepId,
      followUpId: "fu-1",
      dueAt: Date.parse("2026-12-07T10:00:00Z"),
      zone: "Europe/London",
      rules: withAddress,
      firstSmsToNumber: false,
    })) as EmailMessage;
    for (const line of address) {
      expect(message.text).toContain(line);
      expect(message.html).toContain(line);
    }
    if (locale === "de") {
      expect(message.text).toContain("Impressum");
      expect(message.html).toContain("Impressum");
    }
  });
});
