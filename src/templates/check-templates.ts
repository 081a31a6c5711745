import path from "node:path";
import type { Template, VariableSegments } from "liquidjs";
import { DateTime } from "luxon";
import type { ConfigProblem } from "../config/config-files.js";
import { buildDiscountOffer } from "../domain/discount-code.js";
import { nearestName } from "../domain/edit-distance.js";
import type { Channel } from "../domain/events.js";
import {
  type DiscountSettings,
  OPT_OUT_CONFIRMATION_TEMPLATE,
  type Purpose,
  type RuleSet,
  type StepKind,
} from "../domain/rules.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { MAX_VOICE_TEXT_LENGTH, VOICE_LANGUAGES, voiceLanguageOf } from "../domain/voice-call.js";
import {
  type LiquidEngines,
  OUTPUT_LIMIT,
  OUTPUT_LIMIT_MESSAGE,
  TEMPLATE_LIMITS,
} from "./liquid-engines.js";
import { optOutConfirmationContext } from "./opt-out-confirmation.js";
import type { TemplateFiles } from "./read-template-files.js";
import { describeSmsLength } from "./sms-fit.js";
import { smsOptOutLine } from "./sms-opt-out.js";
import {
  CONTRACT_MAXIMA,
  SAMPLE_SHOP,
  type SampleKind,
  type ShopDetails,
  sampleTemplateContext,
  worstCaseTemplateContext,
} from "./template-context.js";
import {
  CHANNEL_PARTS,
  cpuTimeMs,
  hasParts,
  localeFallbacks,
  REQUIRED_PARTS,
  RenderTimeLimitError,
  renderPart,
  renderSmsVariant,
  renderVariant,
  SmsOverCapError,
  TemplateError,
  type TemplatePart,
  type TemplateVariant,
  tidyText,
} from "./template-set.js";

/** A template as the rules use it: on one channel, by some steps. */
export interface TemplateUsage {
  readonly templateId: string;
  readonly channel: Channel;
  readonly kinds: ReadonlySet<StepKind>;
  readonly purposes: ReadonlySet<Purpose>;
  /** `<rule id>.<step id>` of every step that uses it, for messages. */
  readonly usedBy: readonly string[];
}

/** Every (template, channel) pair some rule step uses. */
export function templateUsages(rules: RuleSet): TemplateUsage[] {
  const usages = new Map<
    string,
    { kinds: Set<StepKind>; purposes: Set<Purpose>; usedBy: string[]; usage: TemplateUsage }
  >();
  for (const rule of rules.rules) {
    for (const step of rule.steps) {
      const key = `${step.template}\0${step.channel}`;
      let entry = usages.get(key);
      if (!entry) {
        const kinds = new Set<StepKind>();
        const purposes = new Set<Purpose>();
        const usedBy: string[] = [];
        entry = {
          kinds,
          purposes,
          usedBy,
          usage: { templateId: step.template, channel: step.channel, kinds, purposes, usedBy },
        };
        usages.set(key, entry);
      }
      entry.kinds.add(step.kind);
      entry.purposes.add(step.purpose);
      entry.usedBy.push(`${rule.id}.${step.id}`);
    }
  }
  return [...usages.values()].map((entry) => entry.usage);
}

/** What checkTemplates needs to know beyond the files. */
export interface CheckSettings {
  readonly dir: string;
  /** The rules file, for problems the rules must fix (shop.address). */
  readonly rulesFile: string;
  readonly rules: RuleSet;
  /** Canonical default locale. */
  readonly defaultLocale: string;
  readonly engines: LiquidEngines;
  /**
   * What renders are timed by (ms): the process's CPU time (cpuTimeMs), unless a test slows the
   * machine down. Every render here is also limited in CPU time, not wall time (RenderClock).
   */
  readonly clock?: () => number;
}

const SAMPLE_KINDS: readonly SampleKind[] = ["full", "sparse"];

/**
 * Finds what would fail at send time: missing files, incomplete locales, unknown variables (by
 * static analysis of every file, and by rendering each used variant against full and sparse
 * samples), empty output, SMS bodies longer than the configured number of segments (with the
 * opt-out line the first SMS to a number carries), templates too costly or too long for the
 * largest order the event contract allows, marketing emails without the shop's postal address,
 * and the opt-out confirmation.
 */
export async function checkTemplates(
  files: TemplateFiles,
  settings: CheckSettings,
): Promise<ConfigProblem[]> {
  const { dir, rules, defaultLocale } = settings;
  const problems: ConfigProblem[] = [];
  const report = (file: string, message: string, line = 0, column = 0) =>
    problems.push({ file, line, column, path: "", message });

  const usages = templateUsages(rules);
  for (const [templateId, byLocale] of files.variants) {
    const confirmation = templateId === OPT_OUT_CONFIRMATION_TEMPLATE;
    const shape = confirmation ? CONFIRMATION_SHAPE : VARIABLE_SHAPE;
    const usedAs = usages.filter((usage) => usage.templateId === templateId);
    const noDiscount = confirmation ? undefined : withoutDiscount(usedAs);
    const noUnsubscribe = confirmation ? undefined : withoutUnsubscribe(usedAs);
    for (const variant of byLocale.values()) {
      for (const part of Object.values(variant.parts)) {
        if (files.unparsed.has(part.file)) continue;
        for (const unknown of unknownVariables(
          settings.engines,
          part.template,
          shape,
          noDiscount,
          noUnsubscribe,
        )) {
          report(part.file, unknown.message, unknown.line, unknown.column);
        }
      }
    }
  }

  problems.push(...shopAddressProblems(rules, settings.rulesFile));
  problems.push(...checkOptOutConfirmation(files, settings));

  for (const usage of usages) {
    const { templateId, channel } = usage;
    const needed = REQUIRED_PARTS[channel];
    const byLocale = files.variants.get(templateId);
    const usedBy = `used for ${channel} by ${usage.usedBy.join(", ")}`;
    const defaultChain = localeFallbacks(undefined, defaultLocale);
    const complete = defaultChain.some((locale) => {
      const variant = byLocale?.get(locale);
      return variant !== undefined && hasParts(variant, needed);
    });
    // Without a complete fallback, name the files of the first default-chain locale begun, or of
    // the plain language (en for en-GB), which serves every regional variant.
    const target = complete
      ? undefined
      : (defaultChain.find((locale) => relevantParts(byLocale?.get(locale), channel)) ??
        defaultChain[defaultChain.length - 1] ??
        defaultLocale);
    if (target !== undefined) {
      const variant = byLocale?.get(target);
      const via = target === defaultLocale ? "" : ` (${defaultLocale} falls back to ${target})`;
      // No file of the template at all: maybe its name is misspelt in the rules.
      const near =
        byLocale === undefined ? nearestName(templateId, files.variants.keys()) : undefined;
      const guess = near === undefined ? "" : `; did you mean ${JSON.stringify(near)}?`;
      for (const part of needed.filter((p) => variant?.parts[p] === undefined)) {
        report(
          partFile(dir, templateId, target, part),
          `missing: template ${templateId} is ${usedBy} and needs this file for the default locale ${defaultLocale}${via}${guess}`,
        );
      }
    }
    for (const variant of byLocale?.values() ?? []) {
      const missing = needed.filter((part) => variant.parts[part] === undefined);
      if (variant.locale !== target && missing.length > 0 && relevantParts(variant, channel)) {
        report(
          partFile(dir, templateId, variant.locale, missing[0] ?? "text"),
          `missing: ${variant.locale} has ${presentParts(variant).join(" and ")} but template ${templateId} is ${usedBy}, which needs ${needed.join(" and ")} in every locale; add this file or remove the other ${variant.locale} files`,
        );
      }
      if (missing.length > 0) continue;
      if (Object.values(variant.parts).some((part) => files.unparsed.has(part.file))) continue;
      const sampled = await renderSamples(variant, usage, settings);
      problems.push(...sampled);
      if (sampled.length === 0) problems.push(...(await renderWorstCase(variant, usage, settings)));
    }
  }
  return dedupe(problems);
}

async function renderSamples(
  variant: TemplateVariant,
  usage: TemplateUsage,
  settings: CheckSettings,
): Promise<ConfigProblem[]> {
  const { rules } = settings;
  const problems: ConfigProblem[] = [];
  const report = (file: string, message: string, line = 0, column = 0) =>
    problems.push({ file, line, column, path: "", message });
  const discount = sampleOffer(rules, usage);
  const maxSegments = rules.channels.sms.maxSegments;
  // The first SMS to a number carries it; every SMS may be the first.
  const optOutLine = usage.channel === "sms" ? smsOptOutLine(variant.locale) : undefined;
  let longest: { text: string; segments: number } | undefined;
  let longestCall: { length: number; label: string } | undefined;
  if (usage.channel === "voice" && !voiceLanguageOf(variant.locale)) {
    report(
      variant.parts.text?.file ?? "",
      `template ${usage.templateId} is used for voice by ${usage.usedBy.join(", ")}, and calls are spoken in ${VOICE_LANGUAGES.join(" or ")} only: ${variant.locale} has no keypad instructions; remove this file or use the template for SMS or email`,
    );
    return problems;
  }
  for (const kind of usage.kinds) {
    for (const sample of SAMPLE_KINDS) {
      const context = sampleTemplateContext({
        step: { kind, channel: usage.channel },
        locale: variant.locale,
        kind: sample,
        currency: rules.defaults.currency,
        timezone: rules.defaults.timezone,
        discount,
        shop: shopOf(rules),
      });
      const label = `with the ${sample} sample for a ${kind} by ${usage.channel}`;
      try {
        const rendered = await renderVariant(settings.engines, variant, usage.channel, context, {
          clock: "cpu",
        });
        const textFile = variant.parts.text?.file ?? "";
        if (rendered.text === "") report(textFile, `renders to empty text ${label}`);
        for (const part of ["subject", "text", "html"] as const) {
          if (!rendered[part]?.includes("[object Object]")) continue;
          report(
            variant.parts[part]?.file ?? textFile,
            `renders "[object Object]" ${label}: a mapping (order, customer, an item…) is output whole; output one of its fields, such as {{ order.id }}`,
          );
        }
        // A discount step issues a code: an offer without it cannot be redeemed.
        const shown = `${rendered.text}${rendered.html === undefined ? "" : unescapeHtml(rendered.html)}`;
        if (kind === "discount" && sample === "full" && !shown.includes(discount.code)) {
          report(
            textFile,
            `never shows discount.code ${label}: the customer would get the offer without its code; show {{ discount.code }}, or make the step kind custom`,
          );
        }
        if (usage.channel === "email" && rendered.subject === "") {
          report(variant.parts.subject?.file ?? textFile, `renders to an empty subject ${label}`);
        }
        // Every sample: an address inside {% if store.name %} is missing for online orders.
        if (usage.channel === "email" && usage.purposes.has("marketing")) {
          for (const [part, shown] of [
            ["text", rendered.text],
            ["html", rendered.html === undefined ? undefined : unescapeHtml(rendered.html)],
          ] as const) {
            const missing = rules.shopAddress.find((line) => !shown?.includes(line));
            if (shown === undefined || missing === undefined) continue;
            report(
              variant.parts[part]?.file ?? textFile,
              `a marketing email must show the shop's postal address (shop.address in rules.yaml): ${JSON.stringify(missing)} is missing ${label}; add {{ shop.address }} or the lines of shop.addressLines`,
            );
          }
        }
        if (usage.channel === "voice" && rendered.text.length > (longestCall?.length ?? 0)) {
          longestCall = { length: rendered.text.length, label };
        }
        if (usage.channel === "sms") {
          const text = optOutLine ? `${rendered.text}\n${optOutLine}` : rendered.text;
          const segments = countSmsSegments(text);
          if (segments > (longest?.segments ?? 0)) longest = { text, segments };
        }
      } catch (error) {
        if (!(error instanceof TemplateError)) throw error;
        const costly = limitMessage(error, `the ${sample} sample`);
        report(
          error.file ?? variant.parts.text?.file ?? "",
          costly ?? `Liquid: ${error.message} (${label})`,
          error.line,
          error.column,
        );
        // Every other sample would run into the same limit.
        if (costly) return problems;
      }
    }
  }
  if (longestCall && longestCall.length > MAX_VOICE_TEXT_LENGTH) {
    report(
      variant.parts.text?.file ?? "",
      `a call's message renders to ${longestCall.length} characters ${longestCall.label}; calls speak at most ${MAX_VOICE_TEXT_LENGTH} (about a minute): keep it short`,
    );
  }
  if (longest && longest.segments > maxSegments) {
    const withLine = optOutLine
      ? ` and the opt-out line ${JSON.stringify(optOutLine)} that the first SMS to a number carries`
      : "";
    report(
      variant.parts.text?.file ?? "",
      `renders to ${longest.segments} SMS segments with the sample${withLine} (${describeSmsLength(longest.text)}); channels.sms.maxSegments allows ${maxSegments}`,
    );
  }
  return problems;
}

/**
 * What `check` lets one message cost with the worst-case sample, all its parts together, once
 * warm, in CPU time: about nine times the shipped thank-you email (11 ms), a tenth of a loop in a
 * loop (770 ms). CPU time, not wall time: on a loaded machine (load 15 on 2 cores) the process
 * runs a fraction of the time, and wall time ran past the budget (and liquid's limit) for the
 * shipped templates, which take as much CPU there as anywhere.
 */
export const RENDER_BUDGET_MS = 100;

/**
 * On a slower machine every render costs more: the budget is at least this many times a reference
 * render timed alongside, a loop over the items once (about as costly as the shipped thank-you
 * email, 6 ms on a quiet machine; a loop in a loop is over a hundred times that). CPU time barely
 * grows with load, but some (caches and cores shared with the other processes) and a slower CPU
 * grow every render alike.
 */
export const REFERENCE_BUDGET_FACTOR = 15;

/** The reference: one loop over the items, each escaped and its price formatted. */
const REFERENCE_TEMPLATE =
  "{% for item in order.items %}<li>{{ item.quantity }} &times; {{ item.name }} ({{ item.unitPrice }})</li>\n{% endfor %}";

/**
 * How long the reference takes now with `context` (ms); when it runs into the render limit (CPU
 * time, as every render of `check`), how long it ran until then.
 */
function referenceRender(engines: LiquidEngines, context: object, clock: () => number): number {
  const reference: TemplateVariant = {
    templateId: "reference",
    locale: "en",
    parts: { html: { file: "", template: engines.html.parse(REFERENCE_TEMPLATE) } },
  };
  const started = clock();
  try {
    renderPart(engines, reference, "html", context, { clock: "cpu" });
  } catch (error) {
    if (!(error instanceof RenderTimeLimitError)) throw error;
  }
  return clock() - started;
}

const WORST_CASE = `the largest order the event contract allows (${CONTRACT_MAXIMA.items} items, names of ${CONTRACT_MAXIMA.itemName} characters)`;

/** How often `check` renders a message that is slow, before the fastest run counts. */
const RUNS = 3;

/**
 * Renders the variant against the largest order the contract allows and times it: a template whose
 * work grows faster than the order (a loop per item inside a loop per item) is found here, before
 * it blocks a worker for seconds. A slow render, or one that runs into the render limit, is timed
 * again and the fastest run counts: the first render in a fresh process, or one during a garbage
 * collection or on a busy machine, must not fail a good template (a worker checks at start).
 */
async function renderWorstCase(
  variant: TemplateVariant,
  usage: TemplateUsage,
  settings: CheckSettings,
): Promise<ConfigProblem[]> {
  const { rules, engines } = settings;
  const clock = settings.clock ?? cpuTimeMs;
  const parts = CHANNEL_PARTS[usage.channel].filter((part) => variant.parts[part] !== undefined);
  for (const kind of usage.kinds) {
    const context = worstCaseTemplateContext({
      step: { kind, channel: usage.channel },
      locale: variant.locale,
      currency: rules.defaults.currency,
      timezone: rules.defaults.timezone,
      discount: sampleOffer(rules, usage),
      shop: shopOf(rules),
    });
    const fastest = new Map<TemplatePart, number>();
    let reference = Number.POSITIVE_INFINITY;
    let budget = RENDER_BUDGET_MS;
    for (let run = 1; run <= RUNS; run++) {
      let overLimit: TemplateError | undefined;
      for (const part of parts) {
        const started = clock();
        try {
          if (usage.channel === "sms") {
            await renderSmsVariant(
              engines,
              variant,
              context,
              { maxSegments: rules.channels.sms.maxSegments, optOutLine: true },
              "cpu",
            );
          } else {
            renderPart(engines, variant, part, context, { clock: "cpu" });
          }
        } catch (error) {
          if (!(error instanceof TemplateError)) throw error;
          if (isRenderLimit(error) && run < RUNS) {
            overLimit = error;
            break;
          }
          const message =
            limitMessage(error, WORST_CASE) ??
            (error instanceof SmsOverCapError
              ? `too long for an SMS with ${WORST_CASE}: ${error.message}`
              : `Liquid: ${error.message} (with the worst-case sample for a ${kind} by ${usage.channel}: ${WORST_CASE})`);
          return [problemAt(error.file ?? "", message, error.line, error.column)];
        }
        const took = clock() - started;
        fastest.set(part, Math.min(fastest.get(part) ?? took, took));
      }
      if (overLimit) continue;
      const total = [...fastest.values()].reduce((sum, ms) => sum + ms, 0);
      if (total <= RENDER_BUDGET_MS) break;
      // Slow: is the machine busy? The fastest reference of the runs so far sets the bar.
      reference = Math.min(reference, referenceRender(engines, context, clock));
      budget = Math.max(RENDER_BUDGET_MS, REFERENCE_BUDGET_FACTOR * reference);
      if (total <= budget) break;
      if (run < RUNS) continue;
      const [slowest, ms] = [...fastest].sort((a, b) => b[1] - a[1])[0] ?? ["text", 0];
      return [
        problemAt(
          variant.parts[slowest]?.file ?? "",
          `too costly: with ${WORST_CASE}, this message takes ${Math.round(total)} ms to render (this file ${Math.round(ms)} ms); check allows ${Math.round(budget)} ms per message (${RENDER_BUDGET_MS} ms, or ${REFERENCE_BUDGET_FACTOR} times a loop over the items once on this machine now); ${LOOP_HINT}`,
        ),
      ];
    }
  }
  return [];
}

const LOOP_HINT = "loop over the items once, not once per item";

/** The operator's words for a liquid limit a render ran into, or undefined for other errors. */
function limitMessage(error: TemplateError, sample: string): string | undefined {
  if (isRenderLimit(error)) {
    return `too costly: with ${sample}, rendering exceeds liquid's limit of ${TEMPLATE_LIMITS.renderLimit} ms per part; ${LOOP_HINT}`;
  }
  if (error.message.startsWith(OUTPUT_LIMIT_MESSAGE)) {
    return `too costly: with ${sample}, this part writes more than ${OUTPUT_LIMIT} characters; ${LOOP_HINT}`;
  }
  if (error.message.startsWith("memory alloc limit exceeded")) {
    return `too costly: with ${sample}, rendering exceeds liquid's memory limit of ${TEMPLATE_LIMITS.memoryLimit} characters (what filters and ranges allocate); use shorter ranges and fewer filters per item`;
  }
  return undefined;
}

function isRenderLimit(error: TemplateError): boolean {
  return error instanceof RenderTimeLimitError;
}

function problemAt(file: string, message: string, line = 0, column = 0): ConfigProblem {
  return { file, line, column, path: "", message };
}

/**
 * The opt-out confirmation is sent to any number that texts STOP while the rules send SMS and
 * optOutConfirmation is on: it must exist in the default locale, and every variant must render
 * to some text within channels.sms.maxSegments.
 */
function checkOptOutConfirmation(files: TemplateFiles, settings: CheckSettings): ConfigProblem[] {
  const { rules, dir, defaultLocale, engines } = settings;
  const sendsSms = rules.rules.some((rule) => rule.steps.some((step) => step.channel === "sms"));
  if (!rules.optOutConfirmation || !sendsSms) return [];
  const byLocale = files.variants.get(OPT_OUT_CONFIRMATION_TEMPLATE);
  const defaultChain = localeFallbacks(undefined, defaultLocale);
  const problems: ConfigProblem[] = [];
  if (!defaultChain.some((locale) => byLocale?.get(locale)?.parts.text !== undefined)) {
    const target = defaultChain[defaultChain.length - 1] ?? defaultLocale;
    problems.push(
      problemAt(
        partFile(dir, OPT_OUT_CONFIRMATION_TEMPLATE, target, "text"),
        `missing: rules send SMS and optOutConfirmation is on, so the opt-out confirmation needs this file for the default locale ${defaultLocale} (or set optOutConfirmation: false)`,
      ),
    );
  }
  const context = optOutConfirmationContext(shopOf(rules));
  const maxSegments = rules.channels.sms.maxSegments;
  for (const variant of byLocale?.values() ?? []) {
    const part = variant.parts.text;
    if (!part || files.unparsed.has(part.file)) continue;
    let text: string;
    try {
      text = tidyText(renderPart(engines, variant, "text", context, { clock: "cpu" }) ?? "");
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      const message =
        limitMessage(error, "the rules' shop") ??
        `Liquid: ${error.message} (the opt-out confirmation)`;
      problems.push(problemAt(part.file, message, error.line, error.column));
      continue;
    }
    const segments = countSmsSegments(text);
    if (text === "") {
      problems.push(problemAt(part.file, "renders to empty text (the opt-out confirmation)"));
    } else if (segments > maxSegments) {
      problems.push(
        problemAt(
          part.file,
          `renders to ${segments} SMS segments (${describeSmsLength(text)}); channels.sms.maxSegments allows ${maxSegments}`,
        ),
      );
    }
  }
  return problems;
}

/**
 * Marketing email must show a postal address (CAN-SPAM; the Impressum in Germany): the rules
 * need shop.address as soon as one step sends marketing email.
 */
function shopAddressProblems(rules: RuleSet, rulesFile: string): ConfigProblem[] {
  if (rules.shopAddress.length > 0) return [];
  const steps = rules.rules.flatMap((rule) =>
    rule.steps
      .filter((step) => step.channel === "email" && step.purpose === "marketing")
      .map((step) => `${rule.id}.${step.id}`),
  );
  if (steps.length === 0) return [];
  return [
    {
      file: rulesFile,
      line: 0,
      column: 0,
      path: "shop.address",
      message: `required: ${steps.join(", ")} ${steps.length === 1 ? "sends" : "send"} marketing email, which must show the shop's postal address (CAN-SPAM; the Impressum in Germany); add it, lines separated by commas, such as shop: { name: ${rules.shopName}, address: "${rules.shopName} Ltd, 1 High Street, London N1 1AA" }`,
    },
  ];
}

/** What HTML shows for escaped text, so an address with "&" is found in the HTML part too. */
function unescapeHtml(html: string): string {
  return html
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** The shop of the rules, as the composer passes it. */
function shopOf(rules: RuleSet): ShopDetails {
  return { name: rules.shopName, address: rules.shopAddress };
}

/**
 * An offer shaped by the discount settings of the rules whose discount steps use the template (a
 * rule's own codePrefix and percent, else the defaults'), the longest of them, so the sample code
 * is as long as the longest real one.
 */
function sampleOffer(rules: RuleSet, usage: TemplateUsage) {
  const candidates = rules.rules.flatMap((rule) =>
    rule.steps.some(
      (step) =>
        step.kind === "discount" &&
        step.template === usage.templateId &&
        step.channel === usage.channel,
    )
      ? [rule.discount ?? rules.defaults.discount]
      : [],
  );
  // What varies the text's length: the code's prefix and the percent's digits.
  const size = (s: DiscountSettings) => s.codePrefix.length + String(s.percent).length;
  const longest = candidates.reduce(
    (best, next) => (size(next) > size(best) ? next : best),
    candidates[0] ?? rules.defaults.discount,
  );
  return buildDiscountOffer({
    settings: longest,
    secret: "followups-check-sample",
    customerId: "cus_8f2k1",
    followUpId: "sample",
    now: DateTime.fromISO("2026-03-26T10:00:00Z"),
    timezone: rules.defaults.timezone,
  });
}

const VARIABLE_SHAPE = sampleTemplateContext({
  step: { kind: "discount", channel: "email" },
  locale: "en",
});

/**
 * Why a template may not read `discount.*`, or undefined when it may: `discount` is filled for
 * discount steps only, so a template that no discount step uses must not read its properties
 * (liquid renders a property of null as nothing: "use code  for % off"). An unused template, or
 * one a discount step uses too (it may test `{% if discount %}`), may read them.
 */
function withoutDiscount(usages: readonly TemplateUsage[]): string | undefined {
  if (usages.length === 0 || usages.some((usage) => usage.kinds.has("discount"))) return undefined;
  const kinds = [...new Set(usages.flatMap((usage) => [...usage.kinds]))];
  const usedBy = usages.flatMap((usage) => usage.usedBy);
  return `discount is given to discount steps only, and this template is used by ${usedBy.join(", ")} (${kinds.join(", ")}), where it is empty; remove it, or give a discount step a template of its own`;
}

/**
 * Why a template may not read `unsubscribeUrl`, or undefined when it may: only marketing steps
 * carry an unsubscribe link, so in a template no marketing step uses it is always null (the full
 * sample, which gives it, would not show that).
 */
function withoutUnsubscribe(usages: readonly TemplateUsage[]): string | undefined {
  if (usages.length === 0 || usages.some((usage) => usage.purposes.has("marketing")))
    return undefined;
  const usedBy = usages.flatMap((usage) => usage.usedBy);
  return `only marketing steps carry an unsubscribe link, and this template is used by ${usedBy.join(", ")} (transactional), where it is empty; remove it, or give the steps purpose: marketing`;
}
const CONFIRMATION_SHAPE = optOutConfirmationContext(SAMPLE_SHOP);
/** Properties liquid gives arrays and strings. */
const ARRAY_PROPERTIES = new Set(["size", "first", "last"]);

interface UnknownVariable {
  readonly message: string;
  readonly line: number;
  readonly column: number;
}

/**
 * Variables read from outside the template that the context does not have, found in every branch
 * (the sample render only sees the branches the samples take).
 */
function unknownVariables(
  engines: LiquidEngines,
  template: Template[],
  shape: object,
  noDiscount?: string,
  noUnsubscribe?: string,
): UnknownVariable[] {
  const found: UnknownVariable[] = [];
  const analysis = engines.text.analyzeSync(template, { partials: false });
  for (const variables of Object.values(analysis.globals)) {
    for (const variable of variables) {
      const [first, second] = variable.segments;
      if (noDiscount !== undefined && first === "discount" && second !== undefined) {
        const name = `discount.${typeof second === "object" ? "[…]" : String(second)}`;
        found.push({
          message: `${name} renders as nothing: ${noDiscount}`,
          line: variable.location.row,
          column: variable.location.col,
        });
        continue;
      }
      if (noUnsubscribe !== undefined && first === "unsubscribeUrl") {
        found.push({
          message: `unsubscribeUrl renders as nothing: ${noUnsubscribe}`,
          line: variable.location.row,
          column: variable.location.col,
        });
        continue;
      }
      const problem = unknownPath(shape, variable.segments);
      if (problem) {
        found.push({
          message: `undefined variable: ${problem}`,
          line: variable.location.row,
          column: variable.location.col,
        });
      }
    }
  }
  return found;
}

/** `customer.nmae (customer has id, name, firstName)` when the path leaves the context's shape. */
function unknownPath(shape: object, segments: VariableSegments): string | undefined {
  let value: unknown = shape;
  const walked: string[] = [];
  for (const segment of segments) {
    if (typeof segment !== "string" && typeof segment !== "number") return undefined;
    if (value === null || value === undefined) return undefined;
    const name = walked.length === 0 ? "the template context" : walked.join(".");
    const here = [...walked, String(segment)].join(".");
    if (Array.isArray(value)) {
      if (typeof segment === "number") value = value[0];
      else if (ARRAY_PROPERTIES.has(segment)) value = segment === "size" ? 0 : value[0];
      else return `${here} (${name} is a list: use an index, first, last or size)`;
    } else if (typeof value === "string") {
      if (segment !== "size") return `${here} (${name} is text)`;
      value = 0;
    } else if (typeof value === "object" && Object.hasOwn(value, segment)) {
      value = (value as Record<string | number, unknown>)[segment];
    } else {
      const keys = typeof value === "object" ? Object.keys(value) : [];
      return keys.length > 0
        ? `${here} (${name} has ${keys.join(", ")})`
        : `${here} (${name} has no properties)`;
    }
    walked.push(String(segment));
  }
  return undefined;
}

/** Whether a variant has any part the channel sends (an SMS template may carry an unused subject). */
function relevantParts(variant: TemplateVariant | undefined, channel: Channel): boolean {
  return CHANNEL_PARTS[channel].some((part) => variant?.parts[part] !== undefined);
}

function presentParts(variant: TemplateVariant): TemplatePart[] {
  return (Object.keys(variant.parts) as TemplatePart[]).sort();
}

/** Where a template part lives: `<dir>/<id>/<locale>.<part>.liquid`. */
export function partFile(dir: string, templateId: string, locale: string, part: TemplatePart) {
  return path.join(dir, templateId, `${locale}.${part}.liquid`);
}

/** The same unknown variable is found statically and by rendering; report it once. */
function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const subject = problem.message.replace(/^Liquid: /, "").replace(/ \(.*$/s, "");
    const key = `${problem.file}\0${problem.line}\0${subject}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
