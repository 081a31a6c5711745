import path from "node:path";
import type { Template, VariableSegments } from "liquidjs";
import { DateTime } from "luxon";
import type { ConfigProblem } from "../config/config-files.js";
import { buildDiscountOffer } from "../domain/discount-code.js";
import type { Channel } from "../domain/events.js";
import type { RuleSet, StepKind } from "../domain/rules.js";
import { countSmsSegments, smsEncoding } from "../domain/sms-segments.js";
import type { LiquidEngines } from "./liquid-engines.js";
import type { TemplateFiles } from "./read-template-files.js";
import { type SampleKind, sampleTemplateContext } from "./template-context.js";
import {
  CHANNEL_PARTS,
  hasParts,
  localeFallbacks,
  REQUIRED_PARTS,
  renderVariant,
  TemplateError,
  type TemplatePart,
  type TemplateVariant,
} from "./template-set.js";

/** A template as the rules use it: on one channel, by some steps. */
export interface TemplateUsage {
  readonly templateId: string;
  readonly channel: Channel;
  readonly kinds: ReadonlySet<StepKind>;
  /** `<rule id>.<step id>` of every step that uses it, for messages. */
  readonly usedBy: readonly string[];
}

/** Every (template, channel) pair some rule step uses. */
export function templateUsages(rules: RuleSet): TemplateUsage[] {
  const usages = new Map<
    string,
    { kinds: Set<StepKind>; usedBy: string[]; usage: TemplateUsage }
  >();
  for (const rule of rules.rules) {
    for (const step of rule.steps) {
      const key = `${step.template}\0${step.channel}`;
      let entry = usages.get(key);
      if (!entry) {
        const kinds = new Set<StepKind>();
        const usedBy: string[] = [];
        entry = {
          kinds,
          usedBy,
          usage: { templateId: step.template, channel: step.channel, kinds, usedBy },
        };
        usages.set(key, entry);
      }
      entry.kinds.add(step.kind);
      entry.usedBy.push(`${rule.id}.${step.id}`);
    }
  }
  return [...usages.values()].map((entry) => entry.usage);
}

/** What checkTemplates needs to know beyond the files. */
export interface CheckSettings {
  readonly dir: string;
  readonly rules: RuleSet;
  /** Canonical default locale. */
  readonly defaultLocale: string;
  readonly engines: LiquidEngines;
}

const SAMPLE_KINDS: readonly SampleKind[] = ["full", "sparse"];

/**
 * Finds what would fail at send time: missing files, incomplete locales, unknown variables (by
 * static analysis of every file, and by rendering each used variant against full and sparse
 * samples), empty output, and SMS bodies longer than the configured number of segments.
 */
export async function checkTemplates(
  files: TemplateFiles,
  settings: CheckSettings,
): Promise<ConfigProblem[]> {
  const { dir, rules, defaultLocale } = settings;
  const problems: ConfigProblem[] = [];
  const report = (file: string, message: string, line = 0, column = 0) =>
    problems.push({ file, line, column, path: "", message });

  for (const byLocale of files.variants.values()) {
    for (const variant of byLocale.values()) {
      for (const part of Object.values(variant.parts)) {
        if (files.unparsed.has(part.file)) continue;
        for (const unknown of unknownVariables(settings.engines, part.template)) {
          report(part.file, unknown.message, unknown.line, unknown.column);
        }
      }
    }
  }

  for (const usage of templateUsages(rules)) {
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
      for (const part of needed.filter((p) => variant?.parts[p] === undefined)) {
        report(
          partFile(dir, templateId, target, part),
          `missing: template ${templateId} is ${usedBy} and needs this file for the default locale ${defaultLocale}${via}`,
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
      problems.push(...(await renderSamples(variant, usage, settings)));
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
  const discount = sampleOffer(rules);
  const maxSegments = rules.channels.sms.maxSegments;
  let longest: { text: string; segments: number } | undefined;
  for (const kind of usage.kinds) {
    for (const sample of SAMPLE_KINDS) {
      const context = sampleTemplateContext({
        step: { kind, channel: usage.channel },
        locale: variant.locale,
        kind: sample,
        currency: rules.defaults.currency,
        timezone: rules.defaults.timezone,
        discount,
      });
      const label = `with the ${sample} sample for a ${kind} by ${usage.channel}`;
      try {
        const rendered = await renderVariant(settings.engines, variant, usage.channel, context);
        const textFile = variant.parts.text?.file ?? "";
        if (rendered.text === "") report(textFile, `renders to empty text ${label}`);
        if (usage.channel === "email" && rendered.subject === "") {
          report(variant.parts.subject?.file ?? textFile, `renders to an empty subject ${label}`);
        }
        if (usage.channel !== "email") {
          const segments = countSmsSegments(rendered.text);
          if (segments > (longest?.segments ?? 0)) longest = { text: rendered.text, segments };
        }
      } catch (error) {
        if (!(error instanceof TemplateError)) throw error;
        report(
          error.file ?? variant.parts.text?.file ?? "",
          `Liquid: ${error.message} (${label})`,
          error.line,
          error.column,
        );
      }
    }
  }
  if (longest && longest.segments > maxSegments) {
    const encoding = smsEncoding(longest.text);
    const why =
      encoding.encoding === "UCS-2"
        ? `UCS-2, 70 characters per message, because of ${JSON.stringify(encoding.because)}`
        : "GSM-7, 160 characters per message";
    report(
      variant.parts.text?.file ?? "",
      `renders to ${longest.segments} SMS segments with the sample (${Array.from(longest.text).length} characters, ${why}); channels.sms.maxSegments allows ${maxSegments}`,
    );
  }
  return problems;
}

/** An offer shaped by the rules' discount settings, so the sample code has the real length. */
function sampleOffer(rules: RuleSet) {
  return buildDiscountOffer({
    settings: rules.defaults.discount,
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
function unknownVariables(engines: LiquidEngines, template: Template[]): UnknownVariable[] {
  const found: UnknownVariable[] = [];
  const analysis = engines.text.analyzeSync(template, { partials: false });
  for (const variables of Object.values(analysis.globals)) {
    for (const variable of variables) {
      const problem = unknownPath(variable.segments);
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
function unknownPath(segments: VariableSegments): string | undefined {
  let value: unknown = VARIABLE_SHAPE;
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
