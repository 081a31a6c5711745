import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCancel } from "../../src/cli/cancel-command.js";
import { purposeWarnings, runCheck } from "../../src/cli/check-command.js";
import { commandEnv } from "../../src/cli/command-redis.js";
import { runFailed } from "../../src/cli/failed-command.js";
import { CommandError, type CommandIo, EXIT } from "../../src/cli/io.js";
import { runPlan } from "../../src/cli/plan-command.js";
import { runSimulate } from "../../src/cli/simulate-command.js";
import {
  item,
  type PurchaseSpec,
  purchaseInput,
  rulesFrom,
  SHIPPED_CONFIG_DIR,
  shippedRules,
  yaml,
} from "../support/fixtures.js";

/** A CommandIo that keeps what a command prints. */
function memoryIo(interactive = false) {
  const output = { out: "", err: "" };
  const io: CommandIo = {
    out: (text) => {
      output.out += text;
    },
    err: (text) => {
      output.err += text;
    },
    interactive,
  };
  return { io, output };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "followups-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeTemp(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

const eventFile = (name: string, spec: PurchaseSpec) =>
  writeTemp(name, JSON.stringify(purchaseInput(spec)));

/** rules.yaml with two located problems, in its own directory. */
const BROKEN_RULES = yaml`
  version: 1
  defaults:
    timezone: Europe/Londn
    currency: GBP
  rules:
    - id: thanks
      steps:
        - { kind: thank-you, channel: fax, template: thank-you, delay: PT1H }
`;

/** A "billion laughs" rules.yaml: nine anchors, each a list of nine aliases of the one before. */
const ALIAS_BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  ..."bcdefghi".split("").map((name, i) => {
    const previous = "abcdefgh"[i];
    return `${name}: &${name} [${Array(9).fill(`*${previous}`).join(",")}]`;
  }),
  "",
].join("\n");

const ALIAS_BOMB_PROBLEM =
  "rules.yaml:4:8 YAML: too many alias expansions: with this *c, aliases in this file expand more than 100 times; write the values out or nest fewer aliases";

describe("followups plan", () => {
  it("--json prints exactly eventId, steps and skipped, with the documented fields", async () => {
    const file = await eventFile("tv.json", {
      id: "evt-tv",
      occurredAt: "2026-11-23T10:00:00Z",
      customer: { phone: undefined },
      items: [item("televisions", "1299.00")],
    });
    const { io, output } = memoryIo();
    const code = await runPlan(
      file,
      { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z", json: true },
      io,
    );
    expect(code).toBe(EXIT.ok);
    expect(output.err).toBe("");
    expect(JSON.parse(output.out)).toStrictEqual({
      eventId: "evt-tv",
      steps: [
        {
          stepId: "big-ticket.thank-you",
          ruleId: "big-ticket",
          kind: "thank-you",
          channel: "email",
          template: "thank-you",
          dueAt: "2026-11-23T11:00:00Z",
          localDueAt: "2026-11-23T11:00:00+00:00",
          // Email is not priced; an SMS shows its segments and cost (see the table below).
          segments: null,
          cost: null,
        },
      ],
      skipped: [
        {
          ruleId: "services",
          kind: "thank-you",
          reason: "item SKU-TELEVISIONS (televisions) is not in services",
        },
        { ruleId: "big-ticket", kind: "check-in", reason: "no phone number for SMS" },
        { ruleId: "accessories", kind: "discount", reason: "no item is in tech-with-accessories" },
        {
          ruleId: "loyal-customer",
          kind: "discount",
          reason: "customer has 0 earlier purchases, needs 3 or more",
        },
        {
          ruleId: "thank-you",
          kind: "thank-you",
          reason: "superseded by big-ticket.thank-you: one thank-you per purchase",
        },
      ],
    });
    expect(output.out.endsWith("}\n")).toBe(true);
  });

  it("--json for a purchase nothing matches lists a skip with ruleId and kind null", async () => {
    const file = await eventFile("small.json", { id: "evt-small", items: [item("tea", "3.20")] });
    const { io, output } = memoryIo();
    await runPlan(
      file,
      { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z", json: true },
      io,
    );
    const plan = JSON.parse(output.out) as { steps: unknown[]; skipped: unknown[] };
    expect(plan.steps).toEqual([]);
    expect(plan.skipped[0]).toStrictEqual({
      ruleId: null,
      kind: null,
      reason: "no rule matched this purchase",
    });
  });

  it("--previous-purchases feeds the repeat-customer rule", async () => {
    const file = await eventFile("repeat.json", {
      occurredAt: "2026-11-23T10:00:00Z",
      items: [item("kitchenware", "75.00")],
    });
    const { io, output } = memoryIo();
    await runPlan(
      file,
      { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z", json: true, previousPurchases: 3 },
      io,
    );
    const plan = JSON.parse(output.out) as { steps: { stepId: string; dueAt: string }[] };
    expect(plan.steps.map((s) => [s.stepId, s.dueAt])).toEqual([
      ["thank-you.thank-you", "2026-11-23T11:00:00Z"],
      ["loyal-customer.discount", "2026-12-23T10:00:00Z"],
    ]);
  });

  it("prints a readable table with local times and the skipped steps", async () => {
    const file = await eventFile("table.json", {
      id: "evt-table",
      orderId: "ord-9",
      customer: { id: "cus-9" },
      occurredAt: "2026-11-23T10:00:00Z",
      items: [item("televisions", "1299.00")],
    });
    const { io, output } = memoryIo();
    await runPlan(file, { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z" }, io);
    const version = (await shippedRules()).version;
    expect(output.out).toBe(
      [
        "event evt-table, order ord-9, customer cus-9",
        `time zone Europe/London (from the customer), rules version ${version}`,
        "",
        "STEP                  KIND       CHANNEL  TEMPLATE   DUE (UTC)             LOCAL DUE                  COST",
        "big-ticket.thank-you  thank-you  email    thank-you  2026-11-23T11:00:00Z  Mon 23 Nov 2026 11:00 GMT  -",
        "big-ticket.check-in   check-in   sms      check-in   2027-02-23T10:00:00Z  Tue 23 Feb 2027 10:00 GMT  1 segment, 0.04 GBP",
        "",
        "Skipped:",
        "RULE            KIND       REASON",
        "services        thank-you  item SKU-TELEVISIONS (televisions) is not in services",
        "accessories     discount   no item is in tech-with-accessories",
        "loyal-customer  discount   customer has 0 earlier purchases, needs 3 or more",
        "thank-you       thank-you  superseded by big-ticket.thank-you: one thank-you per purchase",
        "",
      ].join("\n"),
    );
  });

  it("shows a template that fails to render for this purchase as a warning, and in --json", async () => {
    const config = path.join(dir, "failing-template");
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    // Passes check (the samples never take the branch), fails for customer cus-boom.
    await writeFile(
      path.join(config, "templates", "check-in", "en.text.liquid"),
      'How is your TV?{% if customer.id == "cus-boom" %}{% assign o = order %}{{ o.nope }}{% endif %}',
    );
    const file = await eventFile("boom.json", {
      id: "evt-boom",
      customer: { id: "cus-boom" },
      occurredAt: "2026-11-23T10:00:00Z",
      items: [item("televisions", "1299.00")],
    });
    const table = memoryIo();
    expect(await runPlan(file, { config, now: "2026-11-23T10:00:00Z" }, table.io)).toBe(EXIT.ok);
    expect(table.output.out).toContain(
      "big-ticket.check-in   check-in   sms      check-in   2027-02-23T10:00:00Z  Tue 23 Feb 2027 10:00 GMT  fails to render (see below)",
    );
    expect(table.output.out).toMatch(
      /\nWARNING: big-ticket\.check-in would fail at send time: template check-in failed to render: undefined variable: o\.nope.*\n/,
    );
    const json = memoryIo();
    await runPlan(file, { config, now: "2026-11-23T10:00:00Z", json: true }, json.io);
    const steps = (JSON.parse(json.output.out) as { steps: Record<string, unknown>[] }).steps;
    expect(steps.find((s) => s.stepId === "big-ticket.check-in")).toMatchObject({
      segments: null,
      cost: null,
      renderError: expect.stringMatching(
        /^template check-in failed to render: undefined variable: o\.nope/,
      ),
    });
    expect(steps.find((s) => s.stepId === "big-ticket.thank-you")).not.toHaveProperty(
      "renderError",
    );
  });

  it("an event without `type` is read as a purchase", async () => {
    const { type: _, ...untyped } = purchaseInput({ id: "evt-untyped" });
    const file = await writeTemp("untyped.json", JSON.stringify(untyped));
    const { io, output } = memoryIo();
    expect(
      await runPlan(
        file,
        { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z", json: true },
        io,
      ),
    ).toBe(EXIT.ok);
    expect(JSON.parse(output.out)).toMatchObject({ eventId: "evt-untyped" });
  });

  it("an invalid event fails with exit code 1 and every problem, with its path", async () => {
    const file = await eventFile("bad.json", {
      customer: { phone: "12345", timezone: "Mars/Phobos" },
    });
    const { io, output } = memoryIo();
    const failure = runPlan(file, { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z" }, io);
    await expect(failure).rejects.toBeInstanceOf(CommandError);
    await expect(failure).rejects.toMatchObject({
      code: EXIT.invalid,
      message: [
        `${file}: invalid event`,
        'customer.phone: expected a valid phone number in international format, such as +14155550123, got "12345"',
        'customer.timezone: expected an IANA time zone name such as Europe/Berlin, got "Mars/Phobos"',
      ].join("\n"),
    });
    expect(output.out).toBe("");
  });

  it.each([
    [
      "a refund",
      { type: "purchase.refunded", id: "r", occurredAt: "2026-11-23T10:00:00Z", orderId: "o" },
      "only purchase.completed events have follow-ups to plan, got purchase.refunded",
    ],
  ])("%s is refused: nothing to plan", async (_, event, message) => {
    const file = await writeTemp("refund.json", JSON.stringify(event));
    const { io } = memoryIo();
    await expect(runPlan(file, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: `${file}: ${message}`,
    });
  });

  it("a file that is not JSON, or not there, is a clear error", async () => {
    const file = await writeTemp("broken.json", "{ nope");
    const { io } = memoryIo();
    await expect(runPlan(file, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: expect.stringMatching(/^.*broken\.json: not valid JSON \(.+\)$/),
    });
    // A file that ends before its JSON does says so, rather than naming a position at its end.
    const cut = await writeTemp("cut.json", '{\n  "eventId": "evt-cut",\n  "customer": {');
    await expect(runPlan(cut, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: expect.stringMatching(
        /^.*cut\.json: not valid JSON, cut short: the input ends before the JSON does \(.+\)$/,
      ),
    });
    // A key given twice: JSON.parse would keep the second, silently.
    const twice = await writeTemp(
      "twice.json",
      '{"type": "purchase.completed", "customer": {"id": "c-1", "id": "c-2"}}',
    );
    await expect(runPlan(twice, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: `${twice}: gives customer.id twice: give each key once (JSON readers differ on which of the two counts)`,
    });
    const missing = path.join(dir, "missing.json");
    await expect(runPlan(missing, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: `${missing}: file not found`,
    });
  });

  it.each([
    "next tuesday",
    "2026-11-23T09:00", // no offset: it would depend on the machine's time zone
    "2026-11-23",
  ])("--now %j is a usage error (exit 2)", async (now) => {
    const { io } = memoryIo();
    await expect(
      runPlan("unused.json", { config: SHIPPED_CONFIG_DIR, now }, io),
    ).rejects.toMatchObject({
      code: EXIT.usage,
      message: `--now: expected an ISO-8601 date-time with an offset, such as 2026-11-23T09:00:00Z, got ${JSON.stringify(now)}`,
    });
  });

  it("--now with an offset other than Z plans the same instant", async () => {
    const file = await eventFile("now-offset.json", { id: "evt-now" });
    const plans = [];
    for (const now of [
      "2026-11-23T10:00:00Z",
      "2026-11-23T11:00:00+01:00",
      "2026-11-23T05:00-05",
    ]) {
      const { io, output } = memoryIo();
      await runPlan(file, { config: SHIPPED_CONFIG_DIR, now, json: true }, io);
      plans.push(JSON.parse(output.out));
    }
    expect(plans[1]).toStrictEqual(plans[0]);
    expect(plans[2]).toStrictEqual(plans[0]);
  });

  it.each([
    ["exactly a day after --now", "2026-11-24T10:00:00Z", undefined],
    [
      "a second more than a day after --now",
      "2026-11-24T10:00:01Z",
      "occurredAt: 2026-11-24T10:00:01Z is more than a day after now (2026-11-23T10:00:00Z); expected the time the purchase happened",
    ],
    [
      "before 2000",
      "1999-12-31T23:59:59Z",
      "occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the purchase happened",
    ],
  ])("a purchase %s: judged against --now", async (_, occurredAt, problem) => {
    const file = await eventFile("when.json", { id: "evt-when", occurredAt });
    const { io, output } = memoryIo();
    const run = runPlan(
      file,
      { config: SHIPPED_CONFIG_DIR, now: "2026-11-23T10:00:00Z", json: true },
      io,
    );
    if (problem === undefined) {
      expect(await run).toBe(EXIT.ok);
      expect(JSON.parse(output.out)).toMatchObject({ eventId: "evt-when" });
    } else {
      await expect(run).rejects.toMatchObject({
        code: EXIT.invalid,
        message: `${file}: invalid event\n${problem}`,
      });
      expect(output.out).toBe("");
    }
  });

  it("without --now, a purchase far ahead of the real clock is refused", async () => {
    const file = await eventFile("far.json", { id: "evt-far", occurredAt: "2999-01-01T00:00:00Z" });
    const { io } = memoryIo();
    await expect(runPlan(file, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: expect.stringMatching(
        /^.*far\.json: invalid event\noccurredAt: 2999-01-01T00:00:00Z is more than a day after now \(\d{4}-\d\d-\d\dT[\d:.]+Z\); expected the time the purchase happened$/,
      ),
    });
  });

  it("invalid rules stop the plan with the located problems", async () => {
    const config = path.dirname(await writeTemp("broken-config/rules.yaml", BROKEN_RULES));
    const file = await eventFile("any.json", {});
    const { io } = memoryIo();
    await expect(runPlan(file, { config }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: [
        `${config}/rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Londn"`,
        `${config}/rules.yaml:8:28 rules[0].steps[0].channel: expected a channel: email, sms or voice (got "fax")`,
        // The folder given, which a bare `followups check` (config/, valid) would not look at.
        `the rules are invalid; run \`followups check --config ${config}\` for details`,
      ].join("\n"),
    });
  });
});

describe("followups check", () => {
  it("exits 0 with a one-line summary for the shipped config", async () => {
    const { io, output } = memoryIo();
    expect(await runCheck(SHIPPED_CONFIG_DIR, io)).toBe(EXIT.ok);
    expect(output.err).toBe("");
    expect(output.out).toMatch(/^config\S*: valid, 6 rules, 6 steps, .*version [0-9a-f]{12}\S*\n$/);
  });

  it("notes what voice steps need to place calls", async () => {
    const config = path.dirname(await writeTemp("voice-config/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    const rulesFile = path.join(config, "rules.yaml");
    const rules = await readFile(rulesFile, "utf8");
    await writeFile(
      rulesFile,
      rules.replace(
        "      - kind: check-in\n        channel: sms",
        "      - kind: check-in\n        channel: voice",
      ),
    );
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.ok);
    expect(output.err).toBe(
      'note: voice steps (big-ticket.check-in) place calls through Twilio; without Twilio they are skipped ("voice calls need Twilio credentials, a caller id (TWILIO_CALLER_ID or TWILIO_FROM) and PUBLIC_URL") while SMTP or Twilio sends the other channels, and written to the outbox when every channel is\n',
    );
  });

  it("warns about a threshold no configured currency can be compared with", async () => {
    const config = path.dirname(await writeTemp("chf-config/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    const rulesFile = path.join(config, "rules.yaml");
    const rules = await readFile(rulesFile, "utf8");
    await writeFile(
      rulesFile,
      rules.replace("- total: { min: 500 }", "- total: { min: 500, currency: CHF }"),
    );
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.ok);
    expect(output.err).toBe(
      "warning: rule big-ticket: total.min is in CHF, which neither the default currency GBP nor a rate under currencies.rates covers; only orders in CHF can match it\n",
    );
  });

  it("warns about budgets nobody hears of, prices without `other`, and a coalesced thank-you that shows one order", async () => {
    const config = path.dirname(await writeTemp("spend-config/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    const rulesFile = path.join(config, "rules.yaml");
    const rules = (await readFile(rulesFile, "utf8"))
      .replace(
        'voice: { GB: "0.0140", US: "0.0140", DE: "0.0300", other: "0.1000" }',
        'voice: { GB: "0.0140" }',
      )
      .replace(
        '#   budget: { sms: { monthly: "200.00" } }',
        'budget: { sms: { monthly: "200.00" } }',
      );
    await writeFile(rulesFile, rules);
    // A thank-you template of its own, that shows the first order only.
    for (const part of ["text", "html"])
      await writeFile(
        path.join(config, "templates", "thank-you", `en.${part}.liquid`),
        "Thank you for order {{ order.id }}.\n",
      );
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.ok);
    expect(output.err.split("\n").filter((line) => line.startsWith("warning:"))).toEqual([
      "warning: budget.sms: no owners are listed, so nobody gets the emails at 80% and 100% of it",
      'warning: prices.voice has no "other" price: calls to countries it does not name cost nothing in forecasts and count nothing against a budget',
      "warning: rule big-ticket coalesces thank-yous, but template thank-you never shows the other orders: list them from `orders` (config/templates/README.md), or customers are thanked for their first order only",
    ]);
  });

  it("warns of a discount declared transactional: it would reach customers who opted out of offers", async () => {
    const config = path.dirname(await writeTemp("purpose-config/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    const rulesFile = path.join(config, "rules.yaml");
    const rules = (await readFile(rulesFile, "utf8")).replace(
      "        template: accessories-discount\n",
      "        template: accessories-discount\n        purpose: transactional\n",
    );
    await writeFile(rulesFile, rules);
    // Its templates without the unsubscribe link, which check refuses in a transactional step.
    for (const language of ["en", "de"])
      for (const part of ["text", "html"])
        await writeFile(
          path.join(config, "templates", "accessories-discount", `${language}.${part}.liquid`),
          "{{ discount.percent }}% off with {{ discount.code }} until {{ discount.validUntil }}.\n",
        );
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.ok);
    expect(output.err.split("\n").filter((line) => line.startsWith("warning:"))).toEqual([
      "warning: accessories.discount: a discount is an offer, but it says purpose: transactional, so it goes to customers who opted out of offers, without the consent offers need and without an unsubscribe link; leave purpose out (a discount is marketing) unless it is not an offer",
    ]);
    // The shipped rules, whose discounts are offers, get no such warning.
    const shipped = memoryIo();
    expect(await runCheck(SHIPPED_CONFIG_DIR, shipped.io)).toBe(EXIT.ok);
    expect(shipped.output.err).not.toContain("a discount is an offer");
  });

  it("warns when offers are called under the default shop name: the call opens by naming the caller", () => {
    const rules = (shop: string) =>
      rulesFrom(`version: 1
defaults: { timezone: Europe/London, currency: GBP }
${shop}rules:
  - id: r
    steps:
      - { kind: custom, channel: voice, template: call, delay: P3D, purpose: marketing }
      - { kind: check-in, channel: voice, template: call, delay: P7D }
`);
    expect(purposeWarnings(rules(""))).toEqual([
      'shop.name is left at "Your shop", and r.custom calls with offers, which open by naming the caller ("This is a call from Your shop."): name the shop under shop: { name: … } (SHOP_NAME, deprecated, stands in on workers that set it)',
    ]);
    expect(purposeWarnings(rules("shop: { name: Corner Shop }\n"))).toEqual([]);
  });

  it("exits 1 and lists every problem with file:line:column, then the count", async () => {
    const config = path.dirname(await writeTemp("check-config/rules.yaml", BROKEN_RULES));
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.invalid);
    expect(output.out).toBe("");
    expect(output.err).toBe(
      [
        `${config}/rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Londn"`,
        `${config}/rules.yaml:8:28 rules[0].steps[0].channel: expected a channel: email, sms or voice (got "fax")`,
        "2 problems found.",
        "",
      ].join("\n"),
    );
  });

  it("with invalid rules, still lists the templates' own problems, and says what waits for valid rules", async () => {
    const config = path.dirname(await writeTemp("both-broken/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    await writeFile(path.join(config, "rules.yaml"), BROKEN_RULES);
    const broken = path.join(config, "templates", "thank-you", "en.text.liquid");
    await writeFile(broken, "Hello {{ customer.firstName\n");
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.invalid);
    const lines = output.err.trimEnd().split("\n");
    expect(lines.slice(0, 2)).toEqual([
      `${config}/rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Londn"`,
      `${config}/rules.yaml:8:28 rules[0].steps[0].channel: expected a channel: email, sms or voice (got "fax")`,
    ]);
    expect(lines[2]).toMatch(new RegExp(`^${broken}:1:\\d+ .*`));
    expect(lines.slice(3)).toEqual([
      "3 problems found.",
      "The templates were checked on their own (file names, Liquid syntax): once the rules are valid, check also finds the templates and locales they need and renders each one.",
    ]);
  });

  it("an alias bomb is one located problem, exit 1, quickly", async () => {
    const config = path.dirname(await writeTemp("bomb-config/rules.yaml", ALIAS_BOMB));
    const { io, output } = memoryIo();
    const started = performance.now();
    expect(await runCheck(config, io)).toBe(EXIT.invalid);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(output.out).toBe("");
    expect(output.err).toBe(`${config}/${ALIAS_BOMB_PROBLEM}\n1 problem found.\n`);
  });

  it("a directory without rules.yaml is one problem", async () => {
    const config = path.join(dir, "empty-config");
    await mkdir(config, { recursive: true });
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.invalid);
    expect(output.err).toBe(`${config}/rules.yaml file not found\n1 problem found.\n`);
  });

  // A misspelt template name was only missing files, however close to a folder that is there.
  it("suggests the nearest template folder for a template name that has none", async () => {
    const config = path.dirname(await writeTemp("template-typo/rules.yaml", ""));
    await cp(SHIPPED_CONFIG_DIR, config, { recursive: true });
    const rulesFile = path.join(config, "rules.yaml");
    const rules = (await readFile(rulesFile, "utf8"))
      .replace("template: accessories-discount", "template: accessory-discount")
      // A name near none of the folders: only its missing files, no guess.
      .replace("template: loyalty-discount", "template: welcome-gift");
    await writeFile(rulesFile, rules);
    const { io, output } = memoryIo();
    expect(await runCheck(config, io)).toBe(EXIT.invalid);
    const missing = (template: string, part: string, usedBy: string) =>
      `${config}/templates/${template}/en.${part}.liquid missing: template ${template} is used for email by ${usedBy} and needs this file for the default locale en-GB (en-GB falls back to en)`;
    expect(output.err.split("\n")).toEqual([
      `${missing("accessory-discount", "subject", "accessories.discount")}; did you mean "accessories-discount"?`,
      `${missing("accessory-discount", "text", "accessories.discount")}; did you mean "accessories-discount"?`,
      missing("welcome-gift", "subject", "loyal-customer.discount"),
      missing("welcome-gift", "text", "loyal-customer.discount"),
      "4 problems found.",
      "",
    ]);
  });

  // It said so, then also "…/rules.yaml/templates cannot read this folder (ENOTDIR)", counted
  // two problems, and said that the templates had been checked on their own.
  it("rules.yaml named in place of its folder is one problem, not also its templates/", async () => {
    const file = path.join(SHIPPED_CONFIG_DIR, "rules.yaml");
    const { io, output } = memoryIo();
    expect(await runCheck(file, io)).toBe(EXIT.invalid);
    expect(output.out).toBe("");
    expect(output.err).toBe(
      `${file} is a file: --config and CONFIG_DIR name the folder holding rules.yaml and templates/\n1 problem found.\n`,
    );
  });
});

describe("followups failed --wait", () => {
  // A refused value stops before Redis; one read wrongly would reach this port, where nothing listens.
  const savedUrl = process.env.REDIS_URL;
  beforeAll(() => {
    process.env.REDIS_URL = "redis://127.0.0.1:1";
  });
  afterAll(() => {
    if (savedUrl === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = savedUrl;
  });
  const failed = (wait: string, retry = true) =>
    runFailed({ config: SHIPPED_CONFIG_DIR, wait, retry }, memoryIo().io);

  it("refuses anything but decimal seconds above 0 and up to 3600, naming the flag, exit 2", async () => {
    // Number() reads all of these (as 16, 1000, 5, 0, 0.5, 5, 1): not seconds as written.
    for (const wait of [
      "0x10",
      "1e3",
      " 5 ",
      "",
      ".5",
      "5.",
      "+1",
      "-1",
      "0",
      "0.0",
      "3600.5",
      "two",
    ])
      await expect(failed(wait)).rejects.toMatchObject({
        code: EXIT.usage,
        message: `--wait: expected a number of seconds above 0 and at most 3600, in digits with an optional fraction (such as 2 or 0.5), got ${JSON.stringify(wait)}`,
      });
  });

  it("takes whole and fractional seconds (read before it says --wait needs --retry)", async () => {
    for (const wait of ["2", "0.5", "3600", "007.25"])
      await expect(failed(wait, false)).rejects.toMatchObject({
        code: EXIT.usage,
        message: "--wait goes with --retry",
      });
  });
});

describe("followups simulate", () => {
  const purchaseLine = (spec: PurchaseSpec) => JSON.stringify(purchaseInput(spec));
  const lines = () => [
    // 1: a TV (Monday of ISO week 48): thank-you now, check-in in 2027-W08
    purchaseLine({ id: "e1", customer: { id: "cus-a" }, items: [item("televisions", "1299.00")] }),
    "", // 2: blank lines are skipped
    "{not json", // 3
    purchaseLine({
      id: "e4",
      occurredAt: "2026-11-24T10:00:00Z",
      customer: { id: "cus-b" },
      items: [item("kitchenware", "75.00")],
    }),
    purchaseLine({ id: "e5", customer: { id: "cus-x", phone: "12345" } }), // 5: invalid
    JSON.stringify({
      type: "purchase.refunded",
      id: "e6",
      occurredAt: "2026-11-24T10:00:00Z",
      orderId: "ord-1",
    }), // 6: not a purchase, not bad either
    purchaseLine({ id: "e7", customer: { id: "cus-c" }, items: [item("newspapers", "2.50")] }),
    // 8–11: the same customer four times; the fourth purchase is a repeat customer's
    ...["23", "24", "25", "27"].map((day, i) =>
      purchaseLine({
        id: `d${i}`,
        occurredAt: `2026-11-${day}T10:00:00Z`,
        customer: { id: "cus-d" },
        items: [item("kitchenware", "75.00")],
      }),
    ),
  ];

  it("applies cooldowns as the worker does: ten purchases in a month get one loyalty discount", async () => {
    const tenInAMonth = Array.from({ length: 10 }, (_, i) =>
      purchaseLine({
        id: `loyal-${i}`,
        orderId: `ord-loyal-${i}`,
        occurredAt: `2026-11-${String(1 + 3 * i).padStart(2, "0")}T10:00:00Z`,
        customer: { id: "cus-loyal" },
        items: [item("kitchenware", "75.00")],
      }),
    );
    const file = await writeTemp("loyal.ndjson", `${tenInAMonth.join("\n")}\n`);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(EXIT.ok);
    const weeks = (JSON.parse(output.out) as { weeks: { kind: string; count: number }[] }).weeks;
    const total = (kind: string) =>
      weeks.filter((w) => w.kind === kind).reduce((sum, w) => sum + w.count, 0);
    // Purchases 4 to 10 are a repeat customer's; the cooldown (P60D) lets the first through only.
    expect(total("discount")).toBe(1);
    expect(total("thank-you")).toBe(10);
  });

  it("--json: volume per ISO week, channel and kind; bad lines counted with line numbers", async () => {
    const file = await writeTemp("purchases.ndjson", `${lines().join("\n")}\n`);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(EXIT.ok);
    expect(output.err).toBe("");
    expect(JSON.parse(output.out)).toStrictEqual({
      lines: 11,
      purchases: 7,
      planned: 8,
      fallbacks: 0,
      coalesced: 0,
      invalid: [
        { line: 3, problem: expect.stringMatching(/^not valid JSON \(.+\)$/) },
        {
          line: 5,
          problem:
            'customer.phone: expected a valid phone number in international format, such as +14155550123, got "12345"',
        },
      ],
      weeks: [
        { week: "2026-W48", channel: "email", kind: "thank-you", count: 6 },
        // cus-d's fourth purchase: loyalty discount 30 days later, 27 December (a Sunday).
        { week: "2026-W52", channel: "email", kind: "discount", count: 1 },
        { week: "2027-W08", channel: "sms", kind: "check-in", count: 1 },
      ],
      // The delivery replay has tests of its own (simulate-command.test.ts).
      delivery: expect.objectContaining({ currency: "GBP" }),
    });
  });

  it("prints a readable report that lists the bad lines", async () => {
    const file = await writeTemp("purchases-table.ndjson", lines().join("\n"));
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR }, io)).toBe(EXIT.ok);
    const printed = output.out.split("\n");
    expect(printed.slice(0, 7)).toEqual([
      "7 purchases read from 11 lines, 8 follow-ups planned",
      "",
      "WEEK      CHANNEL  KIND       COUNT",
      "2026-W48  email    thank-you  6",
      "2026-W52  email    discount   1",
      "2027-W08  sms      check-in   1",
      "",
    ]);
    // Then the delivery replay (simulate-command.test.ts), then the bad lines.
    expect(printed[7]).toMatch(/^Delivery, as the worker would send them/);
    const badAt = printed.indexOf("2 bad lines (not planned):");
    expect(badAt).toBeGreaterThan(7);
    expect(printed[badAt + 1]).toMatch(/^ {2}line 3: not valid JSON \(.+\)$/);
    expect(printed.slice(badAt + 2)).toEqual([
      '  line 5: customer.phone: expected a valid phone number in international format, such as +14155550123, got "12345"',
      "",
    ]);
  });

  it("a line more than a day ahead of the real clock is a bad line", async () => {
    const file = await writeTemp(
      "future.ndjson",
      `${purchaseLine({ id: "f1", occurredAt: "2999-01-01T00:00:00Z" })}\n`,
    );
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(
      // Its only line: nothing could be simulated.
      EXIT.invalid,
    );
    expect(JSON.parse(output.out)).toMatchObject({
      lines: 1,
      purchases: 0,
      planned: 0,
      invalid: [
        {
          line: 1,
          problem: expect.stringMatching(
            /^occurredAt: 2999-01-01T00:00:00Z is more than a day after now \(.+\); expected the time the purchase happened$/,
          ),
        },
      ],
    });
  });

  it("the shipped sample (config/examples/purchases.ndjson): 200 purchases, and the two bad lines left in to show how they are reported", async () => {
    const sample = "config/examples/purchases.ndjson";
    const cutShort =
      /^not valid JSON, cut short: the line ends before the JSON does \(.+ at position 49\b.*\)$/;
    const badPhone =
      'customer.phone: expected a valid phone number in international format, such as +14155550123, got "12"';
    const json = memoryIo();
    expect(await runSimulate(sample, { config: SHIPPED_CONFIG_DIR, json: true }, json.io)).toBe(
      EXIT.ok,
    );
    expect(json.output.err).toBe("");
    expect(JSON.parse(json.output.out)).toMatchObject({
      lines: 202,
      purchases: 200,
      invalid: [
        { line: 51, problem: expect.stringMatching(cutShort) },
        { line: 121, problem: badPhone },
      ],
    });
    const table = memoryIo();
    expect(await runSimulate(sample, { config: SHIPPED_CONFIG_DIR }, table.io)).toBe(EXIT.ok);
    const printed = table.output.out.split("\n");
    expect(printed[0]).toMatch(/^200 purchases read from 202 lines, \d+ follow-ups planned$/);
    const badAt = printed.indexOf("2 bad lines (not planned):");
    expect(badAt).toBeGreaterThan(0);
    expect(printed[badAt + 1]).toMatch(new RegExp(`^ {2}line 51: ${cutShort.source.slice(1)}`));
    expect(printed.slice(badAt + 2)).toEqual([`  line 121: ${badPhone}`, ""]);
  });

  it("a line that is not JSON says whether it was cut short", async () => {
    const file = await writeTemp(
      "cut.ndjson",
      [
        '{"type": "purchase.completed", "id": "x"',
        '{"id": "y", "note": "unfinish',
        "{not json",
      ].join("\n"),
    );
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(
      // Only bad lines (each a document of its own, not one pretty-printed): nothing simulated.
      EXIT.invalid,
    );
    const invalid = (JSON.parse(output.out) as { invalid: { line: number; problem: string }[] })
      .invalid;
    expect(invalid.map((bad) => bad.line)).toEqual([1, 2, 3]);
    expect(invalid[0]?.problem).toMatch(/^not valid JSON, cut short: the line ends before/);
    expect(invalid[1]?.problem).toMatch(/^not valid JSON, cut short: the line ends before/);
    expect(invalid[2]?.problem).toMatch(/^not valid JSON \(.+\)$/);
  });

  it("a pretty-printed JSON file (one event over many lines, not NDJSON) is refused in one line naming the file and line, exit 1", async () => {
    const event = purchaseInput({ id: "pretty-1" });
    const pretty = await writeTemp("pretty.json", `${JSON.stringify(event, null, 2)}\n`);
    const prettyArray = await writeTemp(
      "pretty-array.json",
      `${JSON.stringify([event], null, 2)}\n`,
    );
    // Formatters that keep the first key on the opening line: still one document over many lines.
    const firstKeyKept = await writeTemp(
      "pretty-first-key.json",
      `${JSON.stringify(event, null, 2).replace(/^\{\n\s*/, "{ ")}\n`,
    );
    for (const [file, line] of [
      [pretty, 1],
      [prettyArray, 1],
      [firstKeyKept, 1],
    ] as const) {
      for (const options of [{}, { json: true }, { steps: true }]) {
        const { io, output } = memoryIo();
        await expect(
          runSimulate(file, { config: SHIPPED_CONFIG_DIR, ...options }, io),
        ).rejects.toMatchObject({
          code: EXIT.invalid,
          message: `${file}: line ${line} begins a JSON document that goes on over the next lines (pretty-printed JSON?); expected one JSON event per line (NDJSON): put each event on a line of its own (jq -c)`,
        });
        expect(output.out).toBe("");
      }
    }
  });

  it("an NDJSON file whose first event was broken over two lines is simulated, the two listed as bad, not refused as pretty-printed", async () => {
    const first = purchaseLine({ id: "broken-1" });
    const cut = first.indexOf(",") + 1;
    const file = await writeTemp(
      "broken-first.ndjson",
      [
        first.slice(0, cut),
        first.slice(cut),
        purchaseLine({ id: "whole-2" }),
        purchaseLine({ id: "whole-3" }),
      ].join("\n"),
    );
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(EXIT.ok);
    const result = JSON.parse(output.out) as {
      purchases: number;
      invalid: { line: number }[];
    };
    expect(result.purchases).toBe(2);
    expect(result.invalid.map((bad) => bad.line)).toEqual([1, 2]);
  });

  it("a file of only bad lines lists them and exits 1, saying that no event could be read", async () => {
    const file = await writeTemp(
      "all-bad.ndjson",
      ["{not json", "", "[1, 2]", "plain text"].join("\n"),
    );
    const table = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR }, table.io)).toBe(EXIT.invalid);
    expect(table.output.out).toContain("3 bad lines (not planned):");
    expect(table.output.err).toBe(
      `${file}: no event could be read, all 3 lines are bad; expected one JSON event per line (NDJSON)\n`,
    );
    const json = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, json.io)).toBe(
      EXIT.invalid,
    );
    expect(
      (JSON.parse(json.output.out) as { invalid: { line: number }[] }).invalid.map((b) => b.line),
    ).toEqual([1, 3, 4]);
    expect(json.output.err).toBe(
      `${file}: no event could be read, all 3 lines are bad; expected one JSON event per line (NDJSON)\n`,
    );
  });

  it("a missing file is a clear error", async () => {
    const missing = path.join(dir, "nope.ndjson");
    const { io } = memoryIo();
    await expect(runSimulate(missing, { config: SHIPPED_CONFIG_DIR }, io)).rejects.toMatchObject({
      code: EXIT.invalid,
      message: `${missing}: file not found`,
    });
  });
});

describe("followups cancel's command line", () => {
  // Refused before any Redis is asked: a config directory that does not exist is never read.
  const config = "/nonexistent-config";

  it("given two or three of --step, --order and --customer, says which were given and that exactly one is taken (exit 2)", async () => {
    const cases = [
      [{ step: "evt-1/big-ticket.check-in", order: "ord-1" }, "--step and --order"],
      [{ order: "ord-1", customer: "cus-1" }, "--order and --customer"],
      [{ step: "evt-1/big-ticket.check-in", customer: "cus-1" }, "--step and --customer"],
      [
        { step: "evt-1/big-ticket.check-in", order: "ord-1", customer: "cus-1" },
        "--step, --order and --customer",
      ],
    ] as const;
    for (const [target, given] of cases) {
      const { io, output } = memoryIo();
      await expect(runCancel({ config, ...target }, io)).rejects.toMatchObject({
        code: EXIT.usage,
        message: `cancel takes exactly one of --step REF, --order ID or --customer ID; got ${given}: cancel each in a command of its own`,
      });
      expect(output).toEqual({ out: "", err: "" });
    }
  });

  it("given none of them, says what it takes (exit 2)", async () => {
    const { io } = memoryIo();
    await expect(runCancel({ config, reason: "asked" }, io)).rejects.toMatchObject({
      code: EXIT.usage,
      message: "name what to cancel: exactly one of --step REF, --order ID or --customer ID",
    });
  });
});

// Each test starts the CLI with tsx, which compiles it first: seconds each on a busy machine.
describe("the followups binary", { timeout: 60_000 }, () => {
  it("wires `check` to its exit code: 0 for the shipped config, 1 for a broken one", async () => {
    const config = path.dirname(await writeTemp("bin-config/rules.yaml", BROKEN_RULES));
    const run = (configDir: string) =>
      promisify(execFile)(
        process.execPath,
        ["--import", "tsx", "src/cli.ts", "check", "--config", configDir],
        { encoding: "utf8" },
      ).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
    const [valid, broken] = await Promise.all([run(SHIPPED_CONFIG_DIR), run(config)]);
    expect([valid.code, valid.stderr]).toEqual([0, ""]);
    expect(valid.stdout).toMatch(/: valid, /);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe("");
    expect(broken.stderr).toBe(
      [
        `${config}/rules.yaml:3:3 defaults.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Londn"`,
        `${config}/rules.yaml:8:28 rules[0].steps[0].channel: expected a channel: email, sms or voice (got "fax")`,
        "2 problems found.",
        "",
      ].join("\n"),
    );
  });

  it("`--version` and `-V` print the package's version and exit 0; `--help` lists them", async () => {
    const { version } = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
        encoding: "utf8",
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
    const [long, short, help] = await Promise.all([
      run(["--version"]),
      run(["-V"]),
      run(["--help"]),
    ]);
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(long).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    expect(short).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    expect([help.code, help.stderr]).toEqual([0, ""]);
    expect(help.stdout).toMatch(/^ {2}-V, --version +print the version and exit$/m);
  });

  it("`simulate` of a pretty-printed JSON file says so in one line on stderr and exits 1", async () => {
    const file = await writeTemp(
      "bin-pretty/event.json",
      `${JSON.stringify(purchaseInput({ id: "pretty-bin" }), null, 2)}\n`,
    );
    const result = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", "simulate", file, "--config", SHIPPED_CONFIG_DIR],
      { encoding: "utf8" },
    ).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect([result.code, result.stdout]).toEqual([1, ""]);
    expect(result.stderr).toBe(
      `${file}: line 1 begins a JSON document that goes on over the next lines (pretty-printed JSON?); expected one JSON event per line (NDJSON): put each event on a line of its own (jq -c)\n`,
    );
  });

  it("`check` on an alias bomb prints the located problem, no stack trace, and exits 1", async () => {
    const config = path.dirname(await writeTemp("bin-bomb-config/rules.yaml", ALIAS_BOMB));
    const result = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", "check", "--config", config],
      { encoding: "utf8" },
    ).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect([result.code, result.stdout]).toEqual([1, ""]);
    expect(result.stderr).toBe(`${config}/${ALIAS_BOMB_PROBLEM}\n1 problem found.\n`);
  });

  it("ends quietly when its reader stops early (a closed pipe), as `… | head` does", async () => {
    // Far more output than a pipe holds, so the command is still writing when the reader leaves.
    const lines = Array.from({ length: 4_000 }, (_, i) =>
      JSON.stringify(purchaseInput({ id: `evt-pipe-${i}`, occurredAt: "2026-11-23T10:00:00Z" })),
    );
    const input = await writeTemp("pipe/purchases.ndjson", `${lines.join("\n")}\n`);
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli.ts",
        "simulate",
        input,
        "--steps",
        "--config",
        SHIPPED_CONFIG_DIR,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // The first chunk, then the reader goes away.
    await once(child.stdout, "data");
    child.stdout.destroy();
    const [code] = (await once(child, "exit")) as [number | null];
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  });

  it("`schedule`, `replan` and `report` say in one line that Redis cannot be reached, and exit 1", async () => {
    // A port nothing listens on (loopback, refused at once).
    const env = { ...process.env, REDIS_URL: "redis://127.0.0.1:1" };
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
        encoding: "utf8",
        env,
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
    const results = await Promise.all([
      run(["schedule", "--config", SHIPPED_CONFIG_DIR]),
      run(["replan", "--dry-run", "--config", SHIPPED_CONFIG_DIR]),
      run(["report", "--config", SHIPPED_CONFIG_DIR]),
    ]);
    for (const result of results) {
      expect([result.code, result.stdout]).toEqual([1, ""]);
      expect(result.stderr).toBe(
        "cannot reach Redis at REDIS_URL: connect ECONNREFUSED 127.0.0.1:1\n",
      );
    }
  });

  it("refuses an empty REDIS_URL, as the worker does, instead of using the default address", async () => {
    // `REDIS_URL=$UNSET followups cancel …` must not act on whatever Redis answers at 6379.
    const saved = process.env.REDIS_URL;
    process.env.REDIS_URL = "";
    try {
      const refusal = await commandEnv().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toBeInstanceOf(CommandError);
      expect((refusal as Error).message).toBe(
        "invalid environment:\nREDIS_URL: set but empty: name a Redis URL (redis: or rediss:), or unset it for the default",
      );
    } finally {
      if (saved === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = saved;
    }
  });
});
