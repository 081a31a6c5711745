import { VOICE_UNAVAILABLE } from "../channels/voice-unavailable.js";
import { formatProblem } from "../config/config-files.js";
import { type FollowUpConfig, loadConfig } from "../config/load-config.js";
import { loadRules } from "../config/load-rules.js";
import { DEFAULT_SHOP_NAME } from "../config/rules-file.js";
import { compareAmount, type Threshold } from "../domain/money.js";
import type { Condition, RuleSet } from "../domain/rules.js";
import { PRICED_CHANNELS } from "../domain/spend.js";
import { stepIdOf } from "../domain/step-ref.js";
import { sampleTemplateContext } from "../templates/template-context.js";
import type { TemplateSet } from "../templates/template-set.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

/**
 * `followups check`: validates the rules and renders every template against samples, reporting
 * every problem at once.
 */
export async function runCheck(configDir: string, io: CommandIo): Promise<number> {
  const result = await loadConfig(configDir);
  if (!result.ok) {
    for (const problem of result.problems) io.err(`${formatProblem(problem)}\n`);
    const count = result.problems.length;
    io.err(`${count} problem${count === 1 ? "" : "s"} found.\n`);
    if (result.templatesOnTheirOwn)
      io.err(
        "The templates were checked on their own (file names, Liquid syntax): once the rules are valid, check also finds the templates and locales they need and renders each one.\n",
      );
    return EXIT.invalid;
  }
  const { rules, templates, version } = result.config;
  const steps = rules.rules.reduce((sum, rule) => sum + rule.steps.length, 0);
  const templateCount = templates.templateIds.length;
  io.out(
    `${configDir}: valid, ${rules.rules.length} rules, ${steps} steps, ${templateCount} templates, version ${version}\n`,
  );
  const voiceSteps = rules.rules.flatMap((rule) =>
    rule.steps.filter((step) => step.channel === "voice").map((step) => stepIdOf(rule, step)),
  );
  if (voiceSteps.length > 0) {
    io.err(
      `note: voice steps (${voiceSteps.join(", ")}) place calls through Twilio; without Twilio they are skipped ("${VOICE_UNAVAILABLE}") while SMTP or Twilio sends the other channels, and written to the outbox when every channel is\n`,
    );
  }
  for (const warning of [
    ...purposeWarnings(rules),
    ...currencyWarnings(rules),
    ...spendWarnings(rules),
    ...(await coalesceWarnings(rules, templates)),
  ])
    io.err(`warning: ${warning}\n`);
  return EXIT.ok;
}

/**
 * Discount steps declared transactional: a discount is an offer, and as a transactional step it
 * would reach customers who opted out of offers, without the consent marketing needs, and (by
 * email) without an unsubscribe link.
 */
export function purposeWarnings(rules: RuleSet): string[] {
  const offerCalls = rules.rules.flatMap((rule) =>
    rule.steps
      .filter((step) => step.channel === "voice" && step.purpose === "marketing")
      .map((step) => stepIdOf(rule, step)),
  );
  const unnamed =
    offerCalls.length > 0 && rules.shopName === DEFAULT_SHOP_NAME
      ? [
          `shop.name is left at "${DEFAULT_SHOP_NAME}", and ${offerCalls.join(", ")} ${offerCalls.length === 1 ? "calls" : "call"} with offers, which open by naming the caller ("This is a call from ${DEFAULT_SHOP_NAME}."): name the shop under shop: { name: … } (SHOP_NAME, deprecated, stands in on workers that set it)`,
        ]
      : [];
  return unnamed.concat(
    rules.rules.flatMap((rule) =>
      rule.steps
        .filter((step) => step.kind === "discount" && step.purpose === "transactional")
        .map(
          (step) =>
            `${stepIdOf(rule, step)}: a discount is an offer, but it says purpose: transactional, so it goes to customers who opted out of offers, without the consent offers need${step.channel === "email" ? " and without an unsubscribe link" : ""}; leave purpose out (a discount is marketing) unless it is not an offer`,
        ),
    ),
  );
}

/**
 * Thresholds no configured currency (the default one, or one with a rate) can be compared with:
 * only orders in a currency the threshold names itself could ever match them.
 */
export function currencyWarnings(rules: RuleSet): string[] {
  const configured = [rules.defaults.currency, ...rules.rates.toBase.keys()];
  const warnings: string[] = [];
  for (const rule of rules.rules) {
    for (const { threshold, where } of thresholdsOf(rule.when)) {
      const comparable = configured.some(
        (currency) => compareAmount({ minor: 0, currency }, threshold).ok,
      );
      if (comparable) continue;
      const named = threshold.values.map((value) => value.currency).join(", ");
      warnings.push(
        `rule ${rule.id}: ${where} is in ${named}, which neither the default currency ${rules.defaults.currency} nor a rate under currencies.rates covers; only orders in ${named} can match it`,
      );
    }
  }
  return warnings;
}

/** Budgets nobody hears about, and priced channels whose prices leave most of the world out. */
export function spendWarnings(rules: RuleSet): string[] {
  const warnings: string[] = [];
  for (const channel of PRICED_CHANNELS) {
    if (rules.spend.budgets[channel] && rules.owners.length === 0)
      warnings.push(
        `budget.${channel}: no owners are listed, so nobody gets the emails at 80% and 100% of it`,
      );
    const prices = rules.spend.prices[channel];
    if (prices && prices.other === undefined)
      warnings.push(
        `prices.${channel} has no "other" price: ${channel === "sms" ? "texts" : "calls"} to countries it does not name cost nothing in forecasts and count nothing against a budget`,
      );
  }
  return warnings;
}

/** The second order of the full sample of a thank-you (template-context.ts). */
const SAMPLE_JOINED_ORDER = "ORD-2026-000124";

/**
 * Thank-you templates of coalescing rules that never show the other orders (`orders`): the
 * purchases that joined would be thanked for nothing but the first order.
 */
export async function coalesceWarnings(rules: RuleSet, templates: TemplateSet): Promise<string[]> {
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const rule of rules.rules) {
    for (const step of rule.steps) {
      if (!step.coalesce || seen.has(`${step.template} ${step.channel}`)) continue;
      seen.add(`${step.template} ${step.channel}`);
      const context = sampleTemplateContext({
        step: { kind: step.kind, channel: step.channel },
        locale: rules.defaults.locale,
        currency: rules.defaults.currency,
        timezone: rules.defaults.timezone,
      });
      try {
        const rendered = await templates.render(
          step.template,
          step.channel,
          rules.defaults.locale,
          context,
        );
        if (!`${rendered.text}${rendered.html ?? ""}`.includes(SAMPLE_JOINED_ORDER)) {
          warnings.push(
            `rule ${rule.id} coalesces thank-yous, but template ${step.template} never shows the other orders: list them from \`orders\` (config/templates/README.md), or customers are thanked for their first order only`,
          );
        }
      } catch {
        // A template that does not render is check's error already.
      }
    }
  }
  return warnings;
}

function thresholdsOf(condition: Condition): { threshold: Threshold; where: string }[] {
  switch (condition.type) {
    case "all":
    case "any":
      return condition.conditions.flatMap(thresholdsOf);
    case "total":
      return [
        ...(condition.min ? [{ threshold: condition.min, where: "total.min" }] : []),
        ...(condition.max ? [{ threshold: condition.max, where: "total.max" }] : []),
      ];
    case "anyItem":
      return [
        ...(condition.minPrice
          ? [{ threshold: condition.minPrice, where: "anyItem.minPrice" }]
          : []),
        ...(condition.maxPrice
          ? [{ threshold: condition.maxPrice, where: "anyItem.maxPrice" }]
          : []),
      ];
    default:
      return [];
  }
}

/** Loads the rules for a command that needs them, or fails with every problem listed. */
export async function loadRulesForCommand(configDir: string): Promise<RuleSet> {
  const result = await loadRules(configDir);
  if (result.ok) return result.rules;
  const listing = result.problems.map(formatProblem).join("\n");
  throw new CommandError(
    `${listing}\nthe rules are invalid; run ${checkCommand(configDir)} for details`,
  );
}

/**
 * The `followups check` that checks `configDir`: with `--config` when check's default (CONFIG_DIR,
 * else `config`) is another folder, which a bare `followups check` would find valid.
 */
function checkCommand(configDir: string): string {
  if (configDir === (process.env.CONFIG_DIR || "config")) return "`followups check`";
  const quoted = /^[\w./@:+,=-]+$/.test(configDir)
    ? configDir
    : `'${configDir.replaceAll("'", `'\\''`)}'`;
  return `\`followups check --config ${quoted}\``;
}

/** Loads the rules and the templates for a command that renders messages, or fails listing every problem. */
export async function loadConfigForCommand(configDir: string): Promise<FollowUpConfig> {
  const result = await loadConfig(configDir);
  if (result.ok) return result.config;
  const listing = result.problems.map(formatProblem).join("\n");
  throw new CommandError(
    `${listing}\nthe rules or templates are invalid; run ${checkCommand(configDir)} for details`,
  );
}
