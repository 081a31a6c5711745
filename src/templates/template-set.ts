import type { Template } from "liquidjs";
import type { Channel } from "../domain/events.js";
import type { LiquidEngines } from "./liquid-engines.js";
import type { TemplateContext } from "./template-context.js";

/** The files a template variant can have: `<locale>.<part>.liquid`. */
export const TEMPLATE_PARTS = ["subject", "text", "html"] as const;
export type TemplatePart = (typeof TEMPLATE_PARTS)[number];

/** Parts a channel cannot send without; HTML is always optional. */
export const REQUIRED_PARTS: Readonly<Record<Channel, readonly TemplatePart[]>> = {
  email: ["subject", "text"],
  sms: ["text"],
  voice: ["text"],
};

/** Which parts a channel sends. */
export const CHANNEL_PARTS: Readonly<Record<Channel, readonly TemplatePart[]>> = {
  email: ["subject", "text", "html"],
  sms: ["text"],
  voice: ["text"],
};

/** One parsed template file. */
export interface ParsedPart {
  /** Path as the operator knows it, for error messages. */
  readonly file: string;
  readonly template: Template[];
}

/** One template in one locale. */
export interface TemplateVariant {
  readonly templateId: string;
  /** Canonical BCP 47 tag, such as de-AT. */
  readonly locale: string;
  readonly parts: Readonly<Partial<Record<TemplatePart, ParsedPart>>>;
}

/** What a channel adapter needs from a template: subject and HTML for email only. */
export interface RenderedMessage {
  readonly subject?: string;
  readonly text: string;
  readonly html?: string;
}

/** A template failed to render, or does not exist for the channel; carries where, for the log. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly templateId: string,
    readonly file?: string,
    readonly line = 0,
    readonly column = 0,
  ) {
    super(message);
    this.name = "TemplateError";
  }
}

/** Validated templates, ready to render; built by loadTemplates and replaced whole on reload. */
export class TemplateSet {
  constructor(
    private readonly variants: ReadonlyMap<string, ReadonlyMap<string, TemplateVariant>>,
    /** Locale of last resort (the rules' defaults.locale, canonical). */
    readonly defaultLocale: string,
    /** Short content hash of every template file, for the start-up log and reload messages. */
    readonly version: string,
    private readonly engines: LiquidEngines,
  ) {}

  /** Template ids found under config/templates. */
  get templateIds(): string[] {
    return [...this.variants.keys()].sort();
  }

  /** The variant render would use: the customer's locale, then its parents, then the default. */
  pick(templateId: string, channel: Channel, locale: string | undefined): TemplateVariant {
    const byLocale = this.variants.get(templateId);
    if (!byLocale) throw new TemplateError(`no template ${templateId}`, templateId);
    for (const candidate of localeFallbacks(locale, this.defaultLocale)) {
      const variant = byLocale.get(candidate);
      if (variant && hasParts(variant, REQUIRED_PARTS[channel])) return variant;
    }
    throw new TemplateError(
      `template ${templateId} has no variant for ${channel} in ${localeFallbacks(locale, this.defaultLocale).join(", ")} (needs ${REQUIRED_PARTS[channel].join(" and ")})`,
      templateId,
    );
  }

  /** Renders a template for a channel in the customer's locale (falling back as pick does). */
  render(
    templateId: string,
    channel: Channel,
    locale: string | undefined,
    context: TemplateContext,
  ): Promise<RenderedMessage> {
    return renderVariant(this.engines, this.pick(templateId, channel, locale), channel, context);
  }
}

/** Whether a variant has all the given parts. */
export function hasParts(variant: TemplateVariant, parts: readonly TemplatePart[]): boolean {
  return parts.every((part) => variant.parts[part] !== undefined);
}

/**
 * de-AT → [de-AT, de, <default>, <its language>]: the customer's locale from most to least
 * specific, then the default the same way (en-GB → en-GB, en). Absent or invalid → the default's.
 */
export function localeFallbacks(locale: string | undefined, defaultLocale: string): string[] {
  const chain: string[] = [];
  for (const tag of [locale, defaultLocale]) {
    const canonical = tag === undefined ? undefined : canonicalLocale(tag);
    if (!canonical) continue;
    const subtags = canonical.split("-");
    for (let length = subtags.length; length > 0; length--) {
      const candidate = subtags.slice(0, length).join("-");
      if (!chain.includes(candidate)) chain.push(candidate);
    }
  }
  return chain;
}

/** The canonical form of a BCP 47 tag (de-at → de-AT), or undefined when it is not one. */
export function canonicalLocale(tag: string): string | undefined {
  try {
    return Intl.getCanonicalLocales(tag)[0];
  } catch {
    return undefined;
  }
}

/**
 * Renders one variant's parts for a channel. Text and subject are not escaped; HTML is. Output is
 * tidied the way mail clients and phones show it: a one-line subject, no runs of blank lines.
 */
export async function renderVariant(
  engines: LiquidEngines,
  variant: TemplateVariant,
  channel: Channel,
  context: TemplateContext,
): Promise<RenderedMessage> {
  const scope = context as unknown as Record<string, unknown>;
  const run = async (part: TemplatePart): Promise<string | undefined> => {
    const parsed = variant.parts[part];
    if (!parsed) return undefined;
    const engine = part === "html" ? engines.html : engines.text;
    try {
      return String(await engine.render(parsed.template, scope));
    } catch (error) {
      throw toTemplateError(error, variant.templateId, parsed.file);
    }
  };
  const parts = CHANNEL_PARTS[channel];
  const subject = parts.includes("subject") ? await run("subject") : undefined;
  const text = await run("text");
  const html = parts.includes("html") ? await run("html") : undefined;
  if (text === undefined) {
    throw new TemplateError(`${variant.locale} has no text part`, variant.templateId);
  }
  return {
    ...(subject !== undefined && { subject: subject.replace(/\s+/g, " ").trim() }),
    text: tidyText(text),
    ...(html !== undefined && { html: html.trim() }),
  };
}

function tidyText(text: string): string {
  return text
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** Turns a liquidjs error into a TemplateError with file, line and column, message without them. */
export function toTemplateError(error: unknown, templateId: string, file: string): TemplateError {
  if (error instanceof TemplateError) return error;
  const token = (error as { token?: { getPosition?: () => number[] } }).token;
  const [line = 0, column = 0] = token?.getPosition?.() ?? [];
  const raw = error instanceof Error ? error.message : String(error);
  const message = raw.replace(/(, file:.*?)?, line:\d+, col:\d+$/, "");
  return new TemplateError(message, templateId, file, line, column);
}
